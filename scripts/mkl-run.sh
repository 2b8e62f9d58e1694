# Sourced by the MKL report scripts: mkl RUN ARGS... runs `$bin mkl ARGS --out RUN` unless
# RUN/mkl.json is there (a rerun skips what is complete), its log appended to $out/mkl.log.
mkl() {
  local run=$1
  shift
  [ -f "$run/mkl.json" ] && return
  rm -rf "$run"
  "$bin" mkl "$@" --out "$run" > /dev/null 2>> "$out/mkl.log"
}
