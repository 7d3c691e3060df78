#include "ffn/client/csv.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace ffn::client {

std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  return absl::StrCat("\"", absl::StrReplaceAll(text, {{"\"", "\"\""}}), "\"");
}

std::string CsvValue(const nlohmann::json& value) {
  if (value.is_null()) return "";
  if (value.is_string()) return CsvField(value.get<std::string>());
  return value.dump();  // nlohmann prints the shortest round-trip form
}

std::string CsvLine(const std::vector<std::string>& fields) {
  return absl::StrCat(absl::StrJoin(fields, ","), "\n");
}

std::vector<std::string> LoadCsvColumns() {
  std::vector<std::string> columns = {"scope", "name"};
  for (const auto& [name, value] : RowFigures(LoadRow())) columns.push_back(name);
  columns.push_back("errors_by_code");
  return columns;
}

std::vector<std::string> LoadCsvCells(const std::string& scope, const LoadRow& row) {
  std::vector<std::string> cells = {CsvField(scope), CsvField(row.variant)};
  for (const auto& [name, value] : RowFigures(row)) cells.push_back(CsvValue(value));
  std::vector<std::string> codes;
  for (const auto& [code, count] : row.errors_by_code)
    codes.push_back(absl::StrCat(code, ":", count));
  cells.push_back(CsvField(absl::StrJoin(codes, ";")));
  return cells;
}

std::string LoadCsv(const LoadResult& result) {
  std::string out = CsvLine(LoadCsvColumns());
  const std::vector<LoadRow> rows = LoadRows(result);
  for (size_t i = 0; i < rows.size(); ++i) {
    absl::StrAppend(&out,
                    CsvLine(LoadCsvCells(i + 1 == rows.size() ? "total" : "variant", rows[i])));
  }
  for (const LoadRow& row : TargetRows(result)) {
    absl::StrAppend(&out, CsvLine(LoadCsvCells("target", row)));
  }
  return out;
}

}  // namespace ffn::client
