// messages_test: every wire struct survives a binary round trip through CAF's serializers.
#include <doctest/doctest.h>

#include "tests/actors/actor_test_util.hpp"

using namespace troupe;

namespace {

template <class T>
T round_trip(caf::actor_system& sys, T value) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  REQUIRE_FALSE(sink(value));
  T copy;
  caf::binary_deserializer source{sys, buf};
  REQUIRE_FALSE(source(copy));
  return copy;
}

tensor sample_tensor() {
  std::vector<float> v{1.f, -2.5f, 3.25f, 0.f, 7.f, 8.5f};
  return tensor::from_vector<float>({2, 3}, v);
}

} // namespace

TEST_CASE("a tensor round-trips as dtype, shape and raw bytes, and a view only its own rows") {
  test::threaded_system t;
  auto in = sample_tensor();
  auto out = round_trip(t.sys, in);
  CHECK(bitwise_equal(in, out));
  auto view = in.slice_rows(1, 2);
  auto out_view = round_trip(t.sys, view);
  CHECK(out_view.dims() == shape{1, 3});
  CHECK(out_view.values<float>()[0] == 0.f);
  CHECK(out_view.buffer()->bytes() >= 12);
  CHECK_FALSE(round_trip(t.sys, tensor{}).defined());
}

TEST_CASE("a tensor whose bytes do not match its shape is refused when loading") {
  test::threaded_system t;
  std::vector<char> buf;
  caf::binary_serializer sink{t.sys, buf};
  uint8_t type = static_cast<uint8_t>(dtype::f32);
  shape dims{4, 4};
  std::vector<char> bytes(12); // 64 expected
  REQUIRE_FALSE(sink(type, dims, bytes));
  tensor x;
  caf::binary_deserializer source{t.sys, buf};
  CHECK(source(x));
}

TEST_CASE("infer_request and infer_response round-trip") {
  test::threaded_system t;
  infer_request req{{sample_tensor(), sample_tensor()}, 2, 1500, 42};
  auto r = round_trip(t.sys, req);
  REQUIRE(r.inputs.size() == 2);
  CHECK(bitwise_equal(r.inputs[1], req.inputs[1]));
  CHECK(r.priority == 2);
  CHECK(r.timeout_us == 1500);
  CHECK(r.correlation_id == 42);
  infer_response resp{{sample_tensor()}, 9, 120, 7, 3400, 5, {0, 1}, {1700, 1650}};
  auto p = round_trip(t.sys, resp);
  CHECK(bitwise_equal(p.outputs.at(0), resp.outputs[0]));
  CHECK(p.correlation_id == 9);
  CHECK(p.queue_us == 120);
  CHECK(p.compute_input_us == 7);
  CHECK(p.compute_infer_us == 3400);
  CHECK(p.batch_rows == 5);
  CHECK(p.stage_devices == std::vector<int32_t>{0, 1});
  CHECK(p.stage_us == std::vector<int64_t>{1700, 1650});
}

TEST_CASE("batch_job, stage_job and batch_done round-trip, errors and actor handles included") {
  test::threaded_system t;
  auto merger = caf::actor_cast<caf::actor>(spawn_merger(t.sys));
  batch_job job{7, 1, {sample_tensor()}, {1, 1}, {merger}, true, 3};
  auto j = round_trip(t.sys, job);
  CHECK(j.batch_id == 7);
  CHECK(j.replica == 1);
  CHECK(bitwise_equal(j.values.at(0), job.values[0]));
  CHECK(j.rows == std::vector<int64_t>{1, 1});
  CHECK(j.stages.at(0) == merger);
  CHECK(j.batched);
  CHECK(j.micro_rows == 3);
  stage_job part{7, 2, {sample_tensor()}, {merger}, merger, {250, 300},
                 to_error(errc::internal, "stage 1 broke")};
  part.linked_types = {1, 7};
  part.linked_dims = {{2, 3}, {4}};
  auto sj = round_trip(t.sys, part);
  CHECK(sj.batch_id == 7);
  CHECK(sj.micro == 2);
  CHECK(bitwise_equal(sj.values.at(0), part.values[0]));
  CHECK(sj.next_stages.at(0) == merger);
  CHECK(sj.merger == merger);
  CHECK(sj.stage_us == std::vector<int64_t>{250, 300});
  CHECK(sj.linked_types == std::vector<uint8_t>{1, 7});
  CHECK(sj.linked_dims == std::vector<std::vector<int64_t>>{{2, 3}, {4}});
  CHECK(errc_of(sj.error) == errc::internal);
  CHECK(t.sys.render(sj.error).find("stage 1 broke") != std::string::npos);
  batch_done done{7, 1, to_error(errc::timeout, "late"), {infer_response{{sample_tensor()}, 3, 0, 0, 0, 0, {}, {}}},
                  {42}};
  auto d = round_trip(t.sys, done);
  CHECK(d.stage_us == std::vector<int64_t>{42});
  CHECK(errc_of(d.error) == errc::timeout);
  CHECK(t.sys.render(d.error).find("late") != std::string::npos);
  CHECK(d.replies.at(0).correlation_id == 3);
  caf::anon_send_exit(merger, caf::exit_reason::user_shutdown);
}

TEST_CASE("placement and status messages round-trip") {
  test::threaded_system t;
  placement_request req{"m", 3, "/x/model.onnx", {{"h"}, {"g", "x"}}, {100, 200, 300}, 2, 8, {}, -1};
  auto r = round_trip(t.sys, req);
  CHECK(r.model == "m");
  CHECK(r.boundaries == std::vector<std::vector<std::string>>{{"h"}, {"g", "x"}});
  CHECK(r.stage_bytes == std::vector<uint64_t>{100, 200, 300});
  CHECK(r.instances == 2);
  placement p{{replica_route{1, {}, {}, {0, 1}}}};
  CHECK(round_trip(t.sys, p).replicas.at(0).devices == std::vector<int32_t>{0, 1});
  CHECK(round_trip(t.sys, replica_route{4, {}, {}, {2}}).slot == 4);
  runtime_status rs{{device_status{0, {0, 1}, 1 << 20, 512, 2, "cpu", {}},
                     device_status{0, {}, 80 << 20, 0, 0, "cuda", "NVIDIA H200"}},
                    {replica_status{"m", 1, 0, {0}, 3}}};
  auto rr = round_trip(t.sys, rs);
  CHECK(rr.devices.at(0).cores == std::vector<int32_t>{0, 1});
  CHECK(rr.replicas.at(0).restarts == 3);
  CHECK(rr.devices.at(1).kind == "cuda");
  CHECK(rr.devices.at(1).name == "NVIDIA H200");
  CHECK(round_trip(t.sys, device_status{1, {3}, 9, 4, 1, "cpu", {}}).used_bytes == 4);
  CHECK(round_trip(t.sys, replica_status{"q", 2, 1, {}, 0}).model == "q");
  model_status ms;
  ms.model = "m";
  ms.completed = 11;
  ms.timed_out = 2;
  ms.unavailable = "no replica left";
  auto mr = round_trip(t.sys, ms);
  CHECK(mr.completed == 11);
  CHECK(mr.timed_out == 2);
  CHECK(mr.unavailable == "no replica left");
}

TEST_CASE("tensor-parallel fields and group tickets round-trip: ids and bytes, no pointers") {
  test::threaded_system t;
  batch_job job{1, 0, {}, {2}, {}, true, 0, 4};
  CHECK(round_trip(t.sys, job).ranks == 4);
  stage_job part;
  part.ranks = 2;
  part.rank = 1;
  auto sj = round_trip(t.sys, part);
  CHECK(sj.ranks == 2);
  CHECK(sj.rank == 1);
  replica_route route{2, {}, {}, {0, 1, 0, 1}, 2};
  auto rr = round_trip(t.sys, route);
  CHECK(rr.tensor_parallel == 2);
  CHECK(rr.devices == std::vector<int32_t>{0, 1, 0, 1});
  placement_request req;
  req.tensor_parallel = 3;
  req.fault_rank = 2;
  auto pr = round_trip(t.sys, req);
  CHECK(pr.tensor_parallel == 3);
  CHECK(pr.fault_rank == 2);
  CHECK(round_trip(t.sys, replica_status{"m", 1, 0, {0, 1}, 0, 2}).tensor_parallel == 2);
  placement_request on_gpu;
  on_gpu.backend = "gpu";
  on_gpu.instance_gpus = {{0, 1}, {}};
  on_gpu.precision = "bf16";
  on_gpu.channels_last = true;
  on_gpu.benchmark_convolutions = true;
  on_gpu.exchange_links = true;
  auto pg = round_trip(t.sys, on_gpu);
  CHECK(pg.backend == "gpu");
  CHECK(pg.instance_gpus == std::vector<std::vector<int32_t>>{{0, 1}, {}});
  CHECK(pg.precision == "bf16");
  CHECK(pg.channels_last);
  CHECK(pg.benchmark_convolutions);
  CHECK(pg.exchange_links);
  CHECK(round_trip(t.sys, replica_status{"m", 1, 0, {0}, 0, 1, "cuda"}).kind == "cuda");
  CHECK(round_trip(t.sys, replica_status{"m", 1, 0, {0, 1}, 0, 1, "cpu", 1}).links == 1);
  auto down = round_trip(t.sys, replica_status{"m", 1, 0, {0}, 1, 2, "cpu", 0, "down", "why"});
  CHECK(down.state == "down");
  CHECK(down.error == "why");

  auto gr = round_trip(t.sys, group_request{"nccl", 4, 3});
  CHECK(gr.kind == "nccl");
  CHECK(gr.size == 4);
  CHECK(gr.count == 3);
  std::vector<uint8_t> id(128);
  for (size_t i = 0; i < id.size(); ++i)
    id[i] = static_cast<uint8_t>(255 - i);
  group_ticket ticket{91, 3, 4, "nccl", id};
  group_tickets tickets{{ticket, group_ticket{92, 0, 2, "host", {}}}};
  auto tr = round_trip(t.sys, tickets);
  REQUIRE(tr.tickets.size() == 2);
  CHECK(tr.tickets[0].group == 91);
  CHECK(tr.tickets[0].rank == 3);
  CHECK(tr.tickets[0].size == 4);
  CHECK(tr.tickets[0].kind == "nccl");
  CHECK(tr.tickets[0].unique_id == id);
  CHECK(tr.tickets[1].kind == "host");
  CHECK(tr.tickets[1].unique_id.empty());
}

TEST_CASE("troupe errors carry their code and message through CAF") {
  test::threaded_system t;
  auto err = to_error(make_error(errc::resource_exhausted, "queue full: level {}", 2));
  CHECK(errc_of(err) == errc::resource_exhausted);
  CHECK(t.sys.render(err) == "troupe: resource_exhausted: queue full: level 2");
  CHECK(errc_of(caf::make_error(caf::sec::request_receiver_down)) == errc::unavailable);
  CHECK_FALSE(errc_of(caf::error{}).has_value());
}
