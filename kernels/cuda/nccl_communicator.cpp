// nccl_communicator: collectives and point-to-point transfers of device tensors through NCCL.
#include "kernels/cuda/nccl_communicator.hpp"

#include <cstring>
#include <thread>

#include "kernels/cuda/cuda_device.hpp"
#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/device_allocator.hpp"
#include "kernels/cuda/elementwise.hpp"
#include "kernels/group_aborts.hpp"

namespace troupe::cuda {

std::vector<std::byte> nccl_id_bytes(const ncclUniqueId& id) {
  std::vector<std::byte> bytes(sizeof id.internal);
  std::memcpy(bytes.data(), id.internal, sizeof id.internal);
  return bytes;
}

expected<ncclUniqueId> nccl_id_from_bytes(std::span<const std::byte> bytes) {
  ncclUniqueId id;
  if (bytes.size() != sizeof id.internal)
    return make_error(errc::invalid_argument, "an NCCL unique id has {} bytes, not {}",
                      sizeof id.internal, bytes.size());
  std::memcpy(id.internal, bytes.data(), bytes.size());
  return id;
}

expected<std::unique_ptr<nccl_communicator>>
nccl_communicator::create(std::span<const std::byte> id_bytes, int rank, int size, int device,
                          cudaStream_t stream) {
  if (size < 1 || rank < 0 || rank >= size)
    return make_error(errc::invalid_argument, "NCCL rank {} of a group of {}", rank, size);
  auto id = nccl_id_from_bytes(id_bytes);
  if (!id)
    return id.error();
  device_guard on{device};
  TROUPE_TRY_STATUS(on.status());
  const bool owns_stream = stream == nullptr;
  if (owns_stream)
    TROUPE_CUDA_TRY(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::unique_ptr<nccl_communicator> self(
      new nccl_communicator(rank, size, device, stream, owns_stream));
  // Enlisted before joining, so an abort also ends a join that waits for a missing rank.
  auto member = group_aborts::global().enlist(
      id_bytes, [raw = self.get()](const status& why) { raw->request_abort(why); });
  if (!member)
    return member.error().with_context("the NCCL group was aborted before this rank joined");
  self->membership_ = *member;
  std::lock_guard lock{self->mutex_};
  if (auto why = self->aborted(); !why) // aborted between enlisting and here
    return why;
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0; // calls return at once; settle() waits, and can abort meanwhile
  ncclComm_t comm = nullptr;
  const ncclResult_t started = ncclCommInitRankConfig(&comm, size, *id, rank, &config);
  self->comm_ = comm;
  if (auto st = self->settle(started, "ncclCommInitRankConfig"); !st) {
    self->abort_now(); // a half-made communicator is released, never destroyed
    return st;
  }
  return self;
}

nccl_communicator::nccl_communicator(int rank, int size, int device, cudaStream_t stream,
                                     bool owns_stream)
    : rank_(rank), size_(size), device_(device), stream_(stream), owns_stream_(owns_stream) {}

nccl_communicator::~nccl_communicator() {
  // First out of the board: once leave returns no abort runs on this object any more.
  if (membership_)
    group_aborts::global().leave(membership_);
  device_guard on{device_};
  {
    std::lock_guard lock{mutex_};
    if (comm_) {
      // Finalize flushes what is still in flight (destroy alone would not wait for it); a
      // group whose peer is gone never finishes it, so it is aborted after a while instead.
      if (settle(ncclCommFinalize(comm_), "ncclCommFinalize", std::chrono::seconds(10)))
        (void)ncclCommDestroy(comm_);
      else
        abort_now();
      comm_ = nullptr;
    }
  }
  if (owns_stream_)
    (void)cudaStreamDestroy(stream_);
}

status nccl_communicator::usable() const {
  if (auto why = aborted(); !why)
    return why;
  if (!comm_)
    return make_error(errc::internal, "the NCCL communicator is closed");
  return status::ok();
}

status nccl_communicator::settle(ncclResult_t result, const char* what,
                                 std::chrono::steady_clock::duration patience) {
  if (result != ncclInProgress)
    return check(result, what);
  const auto deadline = std::chrono::steady_clock::now() + patience;
  ncclResult_t state = ncclInProgress;
  while (true) {
    if (auto st = check(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError"); !st)
      return st;
    if (state != ncclInProgress)
      return check(state, what);
    if (abort_requested_.load(std::memory_order_acquire)) {
      abort_now();
      return aborted();
    }
    if (std::chrono::steady_clock::now() > deadline) {
      abort_now();
      return make_error(errc::timeout, "{} did not finish in time", what);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200)); // NCCL sets up on its own threads
  }
}

void nccl_communicator::request_abort(const status& why) {
  {
    std::lock_guard lock{reason_mutex_};
    if (!abort_requested_.load(std::memory_order_relaxed)) {
      abort_reason_ = why.is_ok() ? status{errc::unavailable, "the NCCL group was aborted"} : why;
      abort_requested_.store(true, std::memory_order_release);
    }
  }
  // A call in progress sees the request in settle() and aborts itself; else it happens here.
  std::lock_guard lock{mutex_};
  abort_now();
}

void nccl_communicator::abort_now() {
  if (!comm_)
    return;
  device_guard on{device_};
  (void)ncclCommAbort(comm_); // also ends its kernels that wait on the device for a peer
  comm_ = nullptr;
}

status nccl_communicator::check_usable() const {
  std::lock_guard lock{mutex_};
  return usable();
}

template <class Call>
status nccl_communicator::nccl_call(const char* what, Call&& call) {
  std::lock_guard lock{mutex_};
  TROUPE_TRY_STATUS(usable());
  return settle(call(), what);
}

status nccl_communicator::aborted() const {
  if (!abort_requested_.load(std::memory_order_acquire))
    return status::ok();
  std::lock_guard lock{reason_mutex_};
  return abort_reason_;
}

status nccl_communicator::on_device(const tensor& t, const char* what) const {
  if (!t.defined() || (t.numel() > 0 && !t.raw()))
    return make_error(errc::invalid_argument, "{}: the tensor has no buffer", what);
  if (t.where() != device{device::kind::cuda, device_})
    return make_error(errc::invalid_argument, "{}: the tensor is not on CUDA device {}", what,
                      device_);
  return status::ok();
}

status nccl_communicator::valid_peer(int peer, const char* what) const {
  if (peer < 0 || peer >= size_ || peer == rank_)
    return make_error(errc::invalid_argument, "{}: peer {} is not another rank of 0..{}", what,
                      peer, size_ - 1);
  return status::ok();
}

status nccl_communicator::all_reduce_sum(tensor& values) {
  TROUPE_TRY_STATUS(check_usable());
  TROUPE_TRY_STATUS(on_device(values, "all_reduce_sum"));
  ncclDataType_t type;
  switch (values.type()) {
    case dtype::f32:
      type = ncclFloat32;
      break;
    case dtype::f16:
      type = ncclFloat16;
      break;
    case dtype::bf16:
      type = ncclBfloat16;
      break;
    default:
      return make_error(errc::unsupported, "all_reduce_sum of {} (fp32, fp16, bf16 only)",
                        to_string(values.type()));
  }
  if (values.numel() == 0)
    return status::ok();
  if (type != ncclFloat32)
    return all_reduce_half(values, type);
  const auto count = static_cast<size_t>(values.numel());
  return nccl_call("ncclAllReduce", [&] {
    return ncclAllReduce(values.raw(), values.raw(), count, type, ncclSum, comm_, stream_);
  });
}

status nccl_communicator::all_reduce_half(tensor& values, ncclDataType_t type) {
  device_guard on{device_}; // the cast kernels and scratch blocks belong to this device
  TROUPE_TRY_STATUS(on.status());
  const dtype narrow = values.type();
  const auto count = static_cast<size_t>(values.numel());
  const auto ranks = static_cast<size_t>(size_);
  // Every rank owns `chunk` sums; the count is padded with zeros to a multiple of the ranks.
  const size_t chunk = (count + ranks - 1) / ranks;
  const size_t padded = chunk * ranks;
  const size_t own = chunk * static_cast<size_t>(rank_);
  auto wide = allocate_device(device_, padded * sizeof(float), stream_);
  if (!wide)
    return wide.error();
  auto* sums = static_cast<float*>((*wide)->data());
  TROUPE_TRY_STATUS(cast(narrow, values.raw(), dtype::f32, sums, values.numel(), stream_));
  if (padded > count)
    TROUPE_CUDA_TRY(cudaMemsetAsync(sums + count, 0, (padded - count) * sizeof(float), stream_));
  // In place: rank r's sums land in its own slice of the block.
  TROUPE_TRY_STATUS(nccl_call("ncclReduceScatter", [&] {
    return ncclReduceScatter(sums, sums + own, chunk, ncclFloat32, ncclSum, comm_, stream_);
  }));
  // The gather writes straight into `values` when no padding is needed, else into scratch.
  std::shared_ptr<storage> gathered;
  auto* out = static_cast<std::byte*>(values.raw());
  if (padded > count) {
    auto scratch = allocate_device(device_, padded * size_of(narrow), stream_);
    if (!scratch)
      return scratch.error();
    gathered = std::move(*scratch);
    out = static_cast<std::byte*>(gathered->data());
  }
  std::byte* mine = out + own * size_of(narrow);
  TROUPE_TRY_STATUS(
      cast(dtype::f32, sums + own, narrow, mine, static_cast<int64_t>(chunk), stream_));
  TROUPE_TRY_STATUS(nccl_call(
      "ncclAllGather", [&] { return ncclAllGather(mine, out, chunk, type, comm_, stream_); }));
  if (gathered)
    TROUPE_CUDA_TRY(cudaMemcpyAsync(values.raw(), out, count * size_of(narrow),
                                    cudaMemcpyDeviceToDevice, stream_));
  return status::ok(); // the scratch blocks are freed on stream_, after this work
}

status nccl_communicator::all_gather(const tensor& part, tensor& whole, int axis) {
  TROUPE_TRY_STATUS(check_usable());
  TROUPE_TRY_STATUS(on_device(part, "all_gather"));
  TROUPE_TRY_STATUS(on_device(whole, "all_gather"));
  const int64_t rank = part.rank();
  if (axis < -rank || axis >= rank)
    return make_error(errc::invalid_argument, "all_gather: axis {} of a rank-{} tensor", axis,
                      rank);
  const auto a = static_cast<size_t>(axis < 0 ? axis + rank : axis);
  shape expected_dims = part.dims();
  expected_dims[a] *= size_;
  if (whole.type() != part.type() || whole.dims() != expected_dims)
    return make_error(errc::invalid_argument,
                      "all_gather: the result must be {} {} (the part's dims, axis {} times {})",
                      to_string(part.type()), to_string(expected_dims), a, size_);
  const size_t part_bytes = part.nbytes();
  if (part_bytes == 0)
    return status::ok();
  // NCCL gathers rank-major: that is the result when no dim before `axis` exceeds 1.
  int64_t outer = 1;
  for (size_t d = 0; d < a; ++d)
    outer *= part.dims()[d];
  if (outer == 1) {
    return nccl_call("ncclAllGather", [&] {
      return ncclAllGather(part.raw(), whole.raw(), part_bytes, ncclInt8, comm_, stream_);
    });
  }
  device_guard on{device_}; // the copies' stream belongs to this device
  TROUPE_TRY_STATUS(on.status());
  // Otherwise gather into a scratch block, then interleave: rank r's rows of `chunk` bytes go
  // to columns [r·chunk, (r+1)·chunk) of each of the `outer` result rows (a strided copy).
  auto scratch = allocate_device(device_, part_bytes * static_cast<size_t>(size_), stream_);
  if (!scratch)
    return scratch.error();
  auto* gathered = static_cast<std::byte*>((*scratch)->data());
  TROUPE_TRY_STATUS(
      nccl_call("ncclAllGather", [&] {
        return ncclAllGather(part.raw(), gathered, part_bytes, ncclInt8, comm_, stream_);
      }));
  const size_t chunk = part_bytes / static_cast<size_t>(outer);
  auto* out = static_cast<std::byte*>(whole.raw());
  for (int r = 0; r < size_; ++r)
    TROUPE_CUDA_TRY(
        cudaMemcpy2DAsync(out + static_cast<size_t>(r) * chunk, chunk * static_cast<size_t>(size_),
                          gathered + static_cast<size_t>(r) * part_bytes, chunk, chunk,
                          static_cast<size_t>(outer), cudaMemcpyDeviceToDevice, stream_));
  return status::ok(); // the scratch block is freed on stream_, after these copies
}

status nccl_communicator::broadcast(tensor& values, int root) {
  TROUPE_TRY_STATUS(check_usable());
  TROUPE_TRY_STATUS(on_device(values, "broadcast"));
  if (root < 0 || root >= size_)
    return make_error(errc::invalid_argument, "broadcast: root {} is not a rank of 0..{}", root,
                      size_ - 1);
  if (values.nbytes() == 0)
    return status::ok();
  return nccl_call("ncclBroadcast", [&] {
    return ncclBroadcast(values.raw(), values.raw(), values.nbytes(), ncclInt8, root, comm_,
                         stream_);
  });
}

status nccl_communicator::send(const tensor& values, int peer) {
  TROUPE_TRY_STATUS(check_usable());
  TROUPE_TRY_STATUS(on_device(values, "send"));
  TROUPE_TRY_STATUS(valid_peer(peer, "send"));
  return nccl_call("ncclSend", [&] {
    return ncclSend(values.raw(), values.nbytes(), ncclInt8, peer, comm_, stream_);
  });
}

status nccl_communicator::recv(tensor& values, int peer) {
  TROUPE_TRY_STATUS(check_usable());
  TROUPE_TRY_STATUS(on_device(values, "recv"));
  TROUPE_TRY_STATUS(valid_peer(peer, "recv"));
  return nccl_call("ncclRecv", [&] {
    return ncclRecv(values.raw(), values.nbytes(), ncclInt8, peer, comm_, stream_);
  });
}

status nccl_communicator::synchronize() {
  TROUPE_CUDA_TRY(cudaStreamSynchronize(stream_));
  return status::ok();
}

} // namespace troupe::cuda
