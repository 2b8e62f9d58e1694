#pragma once
// Small file and text helpers shared by checkpoints, data files, run folders and reports.
#include <functional>
#include <string>
#include <vector>

namespace mmfusion {

// Writes `path` atomically: `writer` fills a temporary file in the same folder, which is
// flushed to disk and renamed over `path`. If `writer` throws, `path` is untouched and
// the temporary file is removed. Throws Error naming the path on I/O failure.
void atomic_write(const std::string& path, const std::function<void(const std::string&)>& writer);
void atomic_write_text(const std::string& path, const std::string& text);

// Local time as YYYYmmdd-HHMMSS, for run and folder names.
std::string timestamp();

// A number as CSV and logs write it: up to 9 significant digits, no trailing zeros.
std::string format_number(double x);
// A CSV field, quoted when it holds a comma, a quote or a newline.
std::string csv_field(const std::string& s);

// UsageError "OPTION PATH: the file exists (pass --force ...)" unless `force` or the
// file is new: an output file is never overwritten by surprise. An empty `option` for a
// path the user did not give (a default output) leaves the option out.
void refuse_overwrite(const std::string& path, bool force, const std::string& option = "--output");

// Whole-file read; Error naming the path when it cannot be read.
std::vector<char> read_bytes(const std::string& path);

}  // namespace mmfusion
