// stage_link_test: a stage's values go over a host link to every rank of the next stage, in
// order, as described; a description from a message is checked before anything is allocated.
#include <doctest/doctest.h>

#include <thread>

#include "kernels/cpu/host_communicator.hpp"
#include "runtime/serve/stage_link.hpp"

using namespace troupe;

TEST_CASE("a stage's values reach every receiver of its link, as the message describes them") {
  auto link = make_host_group(serve::link_size(2)); // the sender and two receiving ranks
  REQUIRE(link.size() == 3);
  const std::vector<float> a{1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  const std::vector<int64_t> b{4, 5, 6};
  const std::vector<tensor> values{tensor::from_vector<float>({2, 3}, a),
                                   tensor::from_vector<int64_t>({3}, b)};
  const auto what = serve::describe(values);
  CHECK(what.types == std::vector<uint8_t>{static_cast<uint8_t>(dtype::f32),
                                           static_cast<uint8_t>(dtype::i64)});
  CHECK(what.dims == std::vector<std::vector<int64_t>>{{2, 3}, {3}});
  REQUIRE(serve::send_values(*link[0], values)); // buffered: returns before anyone receives
  std::vector<expected<std::vector<tensor>>> got(2, make_error(errc::internal, "not run"));
  std::thread second([&] { got[1] = serve::receive_values(*link[2], what); });
  got[0] = serve::receive_values(*link[1], what);
  second.join();
  for (auto& g : got) {
    REQUIRE_MESSAGE(g.has_value(), (g ? "" : g.error().to_string()));
    REQUIRE(g->size() == 2);
    CHECK((*g)[0].dims() == shape{2, 3});
    const auto fa = (*g)[0].values<float>();
    CHECK(std::vector<float>(fa.begin(), fa.end()) == a);
    const auto ib = (*g)[1].values<int64_t>();
    CHECK(std::vector<int64_t>(ib.begin(), ib.end()) == b);
  }
}

TEST_CASE("a receiver told other dims than were sent gets an error, not garbage") {
  auto link = make_host_group(serve::link_size(1));
  const std::vector<tensor> values{tensor::from_vector<float>({4}, std::vector<float>{1, 2, 3, 4})};
  REQUIRE(serve::send_values(*link[0], values));
  serve::linked_values wrong;
  wrong.types = {static_cast<uint8_t>(dtype::f32)};
  wrong.dims = {{5}};
  auto got = serve::receive_values(*link[1], wrong);
  REQUIRE_FALSE(got.has_value());
  CHECK(got.error().code() == errc::invalid_argument);
}

TEST_CASE("a linked-values description from a message is checked before it is allocated") {
  serve::linked_values ok;
  ok.types = {static_cast<uint8_t>(dtype::f16)};
  ok.dims = {{2, 8}};
  CHECK(serve::check_linked(ok));
  CHECK(serve::check_linked(serve::linked_values{}));
  auto bad_type = ok;
  bad_type.types = {static_cast<uint8_t>(dtype::string)};
  CHECK(serve::check_linked(bad_type).code() == errc::invalid_argument);
  bad_type.types = {200};
  CHECK(serve::check_linked(bad_type).message().find("dtype code 200") != std::string::npos);
  auto uneven = ok;
  uneven.dims.push_back({1});
  CHECK(serve::check_linked(uneven).code() == errc::invalid_argument);
  auto negative = ok;
  negative.dims = {{2, -8}};
  CHECK_FALSE(serve::check_linked(negative));
  auto huge = ok;
  huge.dims = {{int64_t{1} << 40, 1 << 20}};
  CHECK_FALSE(serve::check_linked(huge)); // overflows, or exceeds the limit
  CHECK(serve::check_linked(ok, 64).code() == errc::ok);
  CHECK(serve::check_linked(ok, 31).code() == errc::invalid_argument); // 32 bytes > 31
}

TEST_CASE("linked values must fit the receiving stage's inputs: count, dtype, rank, fixed dims") {
  const std::vector<value_info> inputs{{"h", dtype::f32, {-1, 32}}, {"mask", dtype::i64, {-1}}};
  serve::linked_values fits;
  fits.types = {static_cast<uint8_t>(dtype::f32), static_cast<uint8_t>(dtype::i64)};
  fits.dims = {{5, 32}, {5}};
  CHECK(serve::check_linked_inputs(fits, inputs)); // any batch size
  auto fewer = fits;
  fewer.types.pop_back();
  fewer.dims.pop_back();
  CHECK(serve::check_linked_inputs(fewer, inputs).message() ==
        "1 linked values for a stage of 2 inputs");
  auto wrong_type = fits;
  wrong_type.types[1] = static_cast<uint8_t>(dtype::f32);
  CHECK(serve::check_linked_inputs(wrong_type, inputs).message().find("input 'mask'") !=
        std::string::npos);
  auto wrong_width = fits;
  wrong_width.dims[0] = {5, 31};
  CHECK(serve::check_linked_inputs(wrong_width, inputs).code() == errc::invalid_argument);
  auto wrong_rank = fits;
  wrong_rank.dims[1] = {5, 1};
  CHECK(serve::check_linked_inputs(wrong_rank, inputs).code() == errc::invalid_argument);
}

TEST_CASE("a failed send or receive fails only the job on an aborted link, else restarts the "
          "replica; a failed run with its links in step fails only the job") {
  auto group = make_controlled_host_group(2);
  CHECK(serve::on_link_failure(group.ranks[0]->aborted(), false) ==
        serve::link_failure::restart_replica);
  CHECK(serve::on_link_failure(status::ok(), false) == serve::link_failure::restart_replica);
  CHECK(serve::on_link_failure(status::ok(), true) == serve::link_failure::fail_job);
  group.control->abort(status{errc::unavailable, "stage 1 cannot load"});
  CHECK(serve::on_link_failure(group.ranks[0]->aborted(), false) == serve::link_failure::fail_job);
}

TEST_CASE("a replica's links join each stage's rank 0 to every rank of the next stage") {
  const auto links = serve::replica_links(3, 2); // shards [s * 2 + r]
  REQUIRE(links.size() == 2);
  CHECK(links[0].sender == 0);
  CHECK(links[0].receivers == std::vector<size_t>{2, 3});
  CHECK(links[1].sender == 2);
  CHECK(links[1].receivers == std::vector<size_t>{4, 5});
  CHECK(serve::replica_links(1, 4).empty());
  CHECK(serve::replica_links(2, 1).at(0).receivers == std::vector<size_t>{1});
}
