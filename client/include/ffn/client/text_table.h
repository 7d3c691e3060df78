// A plain-text table with aligned columns: a column whose cells are all
// numbers is right-aligned, any other left-aligned.
//
// Example:
//   ffn::client::TextTable table({"variant", "requests"});
//   table.AddRow({"ffn-768/gelu", "1200"});
//   std::cout << table.Render();
#ifndef FFN_CLIENT_TEXT_TABLE_H_
#define FFN_CLIENT_TEXT_TABLE_H_

#include <string>
#include <vector>

namespace ffn::client {

class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header);

  // A row may have fewer cells than the header (the rest stay blank).
  void AddRow(std::vector<std::string> cells);
  // Header, a rule, then the rows; every line ends with '\n'.
  std::string Render() const;

 private:
  std::vector<std::vector<std::string>> rows_;  // rows_[0] is the header
};

}  // namespace ffn::client

#endif  // FFN_CLIENT_TEXT_TABLE_H_
