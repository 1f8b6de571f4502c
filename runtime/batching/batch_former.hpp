// batch_former: decides when a batch goes and which queued requests it holds.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "kernels/status.hpp"
#include "runtime/batching/credit_pool.hpp"
#include "runtime/batching/request_queue.hpp"

namespace troupe {

struct batch_former_options {
  int64_t max_batch_size = 0; // 0: the model has no batch dimension; each request runs alone
  std::vector<int64_t> preferred_batch_sizes; // sizes worth sending at once
  std::vector<int64_t> allowed_batch_sizes;   // batches are padded up to one of these
  bool combine_requests = true; // false (no dynamic_batching block): one request per batch
};

/// Why a batch went when it did.
enum class batch_trigger : uint8_t {
  full,      // max size (or the cap) reached, or the next request does not fit
  preferred, // a preferred size reached exactly
  delay,     // the oldest request waited max_queue_delay
};

struct batch_plan {
  std::vector<uint64_t> ids; // serving order; the batch's rows are the requests' rows in order
  int64_t rows = 0;          // sum of the requests' rows
  int64_t padded_rows = 0;   // rows rounded up to the next allowed size (rows when none)
  size_t replica = 0;        // replica whose credit the batch holds; release it when done
  batch_trigger trigger = batch_trigger::full;
};

/// Triton's dynamic batching rules on a request_queue. Requests are never split and never
/// reordered: a batch is a prefix of the serving order (skipping REJECT requests that have
/// timed out, which expire() answers).
class batch_former {
public:
  /// Errors on sizes that are not positive or above max_batch_size, and on allowed sizes
  /// whose largest is not max_batch_size (some batches could not be padded).
  static expected<batch_former> create(batch_former_options options);

  /// The next batch at `now`, or nullopt to wait (for a timer at queue.next_deadline(), an
  /// admission, or a credit release). A batch goes at once when it reaches max_batch_size
  /// (or the cap), when the next request would not fit, or when a prefix of the queue holds
  /// exactly a preferred size (the largest such prefix); otherwise when the oldest request has
  /// waited max_queue_delay it takes what is there. Takes a credit from `credits` and
  /// removes the requests from `queue`; no credit, no batch.
  std::optional<batch_plan> form(request_queue& queue, steady_time now, credit_pool& credits);

  /// Adaptive cap on the rows of a batch (aimd_batch_cap), clamped to 1..max_batch_size.
  /// A single request larger than the cap still goes alone rather than waiting forever.
  void set_cap(int64_t cap);
  int64_t cap() const { return cap_; }

  /// Smallest allowed size >= rows (rows when no allowed sizes are set).
  int64_t padded(int64_t rows) const;

  const batch_former_options& options() const { return options_; }

private:
  explicit batch_former(batch_former_options options);
  bool is_preferred(int64_t rows) const;

  batch_former_options options_;
  int64_t cap_ = 0;
};

} // namespace troupe
