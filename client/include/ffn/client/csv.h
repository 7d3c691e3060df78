// CSV renderings of load reports (RFC 4180: a field holding a comma, quote
// or line break is quoted, quotes doubled). Numbers are written in their
// shortest form that reads back as the same double, so a CSV holds exactly
// the figures of the JSON report.
//
// Example:
//   ffn::client::LoadResult result;  // from RunLoad
//   std::ofstream("load.csv") << ffn::client::LoadCsv(result);
#ifndef FFN_CLIENT_CSV_H_
#define FFN_CLIENT_CSV_H_

#include <string>
#include <vector>

#include "ffn/client/load.h"
#include "ffn/client/report.h"
#include "nlohmann/json.hpp"

namespace ffn::client {

// One CSV field, quoted if it needs to be.
std::string CsvField(const std::string& text);
// A CSV field for a JSON scalar: strings as CsvField, numbers in shortest
// round-trip form, null as empty.
std::string CsvValue(const nlohmann::json& value);
// Fields joined by commas, ending with "\n".
std::string CsvLine(const std::vector<std::string>& fields);

// The columns of a report row: scope, name, the RowFigures names, then
// errors_by_code ("CODE:count;CODE:count").
std::vector<std::string> LoadCsvColumns();
// The cells of LoadCsvColumns() for `row`; scope is "variant", "total" or
// "target".
std::vector<std::string> LoadCsvCells(const std::string& scope, const LoadRow& row);

// A header line, then one line per variant, TOTAL, and one per target.
std::string LoadCsv(const LoadResult& result);

}  // namespace ffn::client

#endif  // FFN_CLIENT_CSV_H_
