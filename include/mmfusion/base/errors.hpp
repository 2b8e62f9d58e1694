#pragma once
// The error kinds the command line turns into exit codes and labels. Each carries a one-line
// message that names the culprit (a config path, a file, an epoch and step).
#include <stdexcept>
#include <string>

namespace mmfusion {

// A malformed or inconsistent configuration or command line: exit code 2.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A command line that would destroy or misplace work (an output that exists, a resume in
// the wrong place): exit code 2 too, labelled "usage error", as the config is not at fault.
struct UsageError : ConfigError {
  using ConfigError::ConfigError;
};

// Any other failure (I/O, corrupt file, divergence): exit code 1.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A file that could not be written (a full disk, a quota, a read-only folder): exit 1, the
// message "PATH: cannot write: REASON".
struct WriteError : Error {
  using Error::Error;
};

// Training stopped by SIGINT/SIGTERM after a clean save: exit code 130.
struct Interrupted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace mmfusion
