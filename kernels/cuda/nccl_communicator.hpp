// nccl_communicator: the communicator interface over NCCL, for shards on GPUs of one or many nodes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "kernels/communicator.hpp"

namespace troupe::cuda {

/// The bytes of an ncclUniqueId, the form in which it travels in messages between processes.
std::vector<std::byte> nccl_id_bytes(const ncclUniqueId& id);
/// The id back from its bytes; `invalid_argument` unless there are exactly NCCL_UNIQUE_ID_BYTES.
expected<ncclUniqueId> nccl_id_from_bytes(std::span<const std::byte> bytes);

/// One rank of an NCCL group. Every call enqueues its work on `stream()` and returns without
/// waiting for the device: work enqueued later on that stream sees the result (give the
/// shard's compute stream at creation to need no other synchronization); `synchronize` waits.
/// Tensors must live on this communicator's GPU.
///
/// The communicator is NCCL's nonblocking kind and enlists in group_aborts::global() under
/// its id's bytes: aborting the group there (the exchange does when a rank stops, or a rank
/// that cannot load) calls ncclCommAbort, which ends a join that waits for a rank that never
/// comes and collectives stuck on the device for a rank that is gone; every later call fails
/// with the abort's reason, and a stream that was stuck moves on (its results are garbage:
/// check aborted() before using them).
class nccl_communicator final : public communicator {
public:
  /// Joins the group named by `id` (from make_nccl_unique_id) as `rank` of `size` on GPU
  /// `device`; blocks until every rank has joined, or until the group is aborted (then
  /// `unavailable` with the abort's reason). With a null `stream` the communicator creates
  /// and owns one.
  static expected<std::unique_ptr<nccl_communicator>> create(std::span<const std::byte> id,
                                                             int rank, int size, int device,
                                                             cudaStream_t stream = nullptr);
  ~nccl_communicator() override;
  nccl_communicator(const nccl_communicator&) = delete;
  nccl_communicator& operator=(const nccl_communicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int device_index() const { return device_; }
  cudaStream_t stream() const { return stream_; }

  /// fp16/bf16 accumulate in fp32: the values are widened into an fp32 staging block on
  /// stream(), reduce-scattered in fp32 (each rank owns the exact sums of 1/size of them),
  /// narrowed there once and all-gathered in their own type. Every rank gets the same bits.
  /// Cost against a 16-bit all-reduce: 1.5x the bytes on the wire ((size-1)/size of 4 bytes
  /// per element in the reduce-scatter plus 2 in the gather, instead of 2 + 2), and 4 bytes per
  /// element of device scratch (6 when the count is not a multiple of size).
  status all_reduce_sum(tensor& values) override;
  status all_gather(const tensor& part, tensor& whole, int axis) override;
  status broadcast(tensor& values, int root) override;
  status send(const tensor& values, int peer) override;
  status recv(tensor& values, int peer) override;
  /// Waits until everything enqueued on stream() so far has finished.
  status synchronize();
  /// The abort's reason once the group was aborted, else ok. Takes no NCCL or CUDA call, so a
  /// CUDA host callback may ask.
  status aborted() const override;

private:
  nccl_communicator(int rank, int size, int device, cudaStream_t stream, bool owns_stream);
  status on_device(const tensor& t, const char* what) const;
  status valid_peer(int peer, const char* what) const;
  status all_reduce_half(tensor& values, ncclDataType_t type);
  /// ok while the communicator may be called (with mutex_ held), else why not.
  status usable() const;
  /// usable(), taking mutex_.
  status check_usable() const;
  /// One NCCL call, `call()` returning its ncclResult_t, with mutex_ held only around it (and
  /// settling it): other work (scratch blocks, casts) runs unlocked, so a blocking CUDA call
  /// never holds up an abort that would release it.
  template <class Call>
  status nccl_call(const char* what, Call&& call);
  /// The outcome of an NCCL call: waits out ncclInProgress (the nonblocking kind's answer
  /// while the work is set up) until `patience` runs out, aborting the communicator when an
  /// abort is asked for meanwhile or patience ends. With mutex_ held.
  status settle(ncclResult_t result, const char* what,
                std::chrono::steady_clock::duration patience = std::chrono::hours(24 * 365));
  /// The group_aborts callback: records `why`, then aborts once no call is in progress.
  void request_abort(const status& why);
  /// ncclCommAbort, with mutex_ held; the communicator is closed afterwards.
  void abort_now();

  mutable std::mutex mutex_; // each NCCL call on comm_, and closing it
  ncclComm_t comm_ = nullptr;
  int rank_;
  int size_;
  int device_;
  cudaStream_t stream_;
  bool owns_stream_;
  uint64_t membership_ = 0; // in group_aborts::global(); 0: not enlisted
  mutable std::mutex reason_mutex_;
  std::atomic<bool> abort_requested_{false};
  status abort_reason_; // set once, before abort_requested_
};

} // namespace troupe::cuda
