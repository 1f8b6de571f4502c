// communicator: the collective operations shards of one replica use to exchange tensors.
#pragma once

#include <memory>

#include "kernels/status.hpp"
#include "kernels/tensor.hpp"

namespace troupe {

/// One participant (rank) of a group of `size()` shards. Every rank calls the same collective
/// with tensors of equal dtype and shape (except where a call says otherwise); a call returns
/// when this rank's part is done. Implementations: the host one (threads of one process, CPU
/// devices) and NCCL (GPUs); tests of exchange logic run on the host one. Not thread-safe: one
/// communicator per shard, used from the shard's thread.
class communicator {
public:
  virtual ~communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  /// Element-wise sum over all ranks, written back into `values` on every rank (fp32, fp16,
  /// bf16; fp16/bf16 accumulate in fp32).
  virtual status all_reduce_sum(tensor& values) = 0;
  /// Concatenates every rank's `part` along `axis` in rank order into `whole`, whose dims are
  /// part's with dim `axis` multiplied by size(). Parts must all have the same dims.
  virtual status all_gather(const tensor& part, tensor& whole, int axis) = 0;
  /// Copies root's `values` into `values` on every other rank.
  virtual status broadcast(tensor& values, int root) = 0;
  /// Point to point: `send` returns once `values` may be reused; `recv` fills `values` (whose
  /// dtype and dims the receiver must know) with what rank `peer` sent.
  virtual status send(const tensor& values, int peer) = 0;
  virtual status recv(tensor& values, int peer) = 0;
  /// Why this rank's group was aborted (its collectives fail from then on), or ok while it
  /// works. Implementations that cannot be aborted from outside report ok.
  virtual status aborted() const { return status::ok(); }
};

} // namespace troupe
