#include "mmfusion/base/parallel.hpp"

#include <omp.h>

#include <algorithm>
#include <exception>
#include <mutex>

namespace mmfusion {

void parallel_chunks(int64_t n, int64_t grain, int threads_wanted,
                     const std::function<void(int64_t, int64_t)>& f) {
  if (n <= 0) return;
  const int64_t most = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  const int threads = static_cast<int>(std::min<int64_t>(std::max(1, threads_wanted), most));
  if (threads <= 1 || omp_in_parallel()) return f(0, n);
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), count = omp_get_num_threads();
    const int64_t chunk = (n + count - 1) / count;
    const int64_t begin = std::min(n, t * chunk), end = std::min(n, begin + chunk);
    if (begin < end) {
      try {
        f(begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace mmfusion
