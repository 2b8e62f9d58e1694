#pragma once
// Small file helpers shared by checkpoints, data files and run folders.
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

// Whole-file read; Error naming the path when it cannot be read.
std::vector<char> read_bytes(const std::string& path);

}  // namespace mmfusion
