#pragma once
// Loops split among threads. LibTorch's at::parallel_for is a header template that runs
// serially in any translation unit compiled without OpenMP (as this project's are, for
// the precompiled header's sake); this one lives in a file compiled with it.
#include <cstdint>
#include <functional>

namespace mmfusion {

// Runs f(begin, end) over [0, n) in contiguous chunks of at least `grain` rows, one per
// thread, on `threads` OpenMP threads (callers pass LibTorch's intra-op setting,
// at::get_num_threads, so that `threads` in a config holds), and rethrows the first
// exception a chunk threw. Which rows a chunk gets depends on the thread count: f must
// give each row the same result whatever chunk it is in.
void parallel_chunks(int64_t n, int64_t grain, int threads,
                     const std::function<void(int64_t, int64_t)>& f);

}  // namespace mmfusion
