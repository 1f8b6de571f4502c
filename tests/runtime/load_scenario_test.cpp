// Tests for load scenario parsing: every setting read, and errors that name line and key.
#include <doctest/doctest.h>

#include <filesystem>
#include <random>

#include <fmt/format.h>

#include "runtime/load/scenario.hpp"

using namespace troupe::load;

namespace {

std::string error_of(const std::string& yaml) {
  auto s = parse_scenario(yaml, "s.yaml");
  REQUIRE_FALSE(s);
  return s.error().message();
}

} // namespace

TEST_CASE("scenario parses phases in order with every arrival process and the mixes") {
  const std::string yaml = R"(name: demo
seed: 7
transport: http_binary
connections: 8
timeout_ms: 500
slo_ms: 25
payload: {kind: fashion_mnist, images: data/img.gz, labels: data/lab.gz, mean: 0.5, std: 0.25}
models:
  - {name: a, weight: 3}
  - name: b
    payload: {kind: random}
priorities:
  - {level: 1, weight: 1}
  - {level: 2, weight: 4}
phases:
  - {name: warm, requests: 100, arrival: {process: constant, rate: 50}}
  - {duration_s: 10, arrival: {process: poisson, rate: 200}, slo_ms: 10, timeout_ms: 50}
  - {duration_s: 6, arrival: {process: bursty, rate: 400, on_s: 0.5, off_s: 1.5}}
  - {duration_s: 6, arrival: {process: gamma, rate: 100, cv: 3}}
  - {duration_s: 6, arrival: {process: ramp, rate: 10, to_rate: 300}, models: [b]}
  - {duration_s: 6, requests: 50, arrival: {process: closed, concurrency: 4, think_ms: 2}}
)";
  auto s = parse_scenario(yaml, "s.yaml", "/base");
  REQUIRE_MESSAGE(s, s.error().to_string());
  CHECK(s->name == "demo");
  CHECK(s->seed == 7);
  CHECK(s->transport == transport_kind::http_binary);
  CHECK(s->connections == 8);
  CHECK(s->timeout_ms == 500);
  CHECK(s->slo_ms == 25);
  CHECK(s->payload.kind == payload_kind::fashion_mnist);
  CHECK(s->payload.images == "/base/data/img.gz");
  CHECK(s->payload.labels == "/base/data/lab.gz");
  CHECK(s->payload.mean == 0.5);
  CHECK(s->payload.stddev == 0.25);
  REQUIRE(s->models.size() == 2);
  CHECK(s->models[0].name == "a");
  CHECK(s->models[0].weight == 3);
  CHECK(s->models[1].name == "b");
  REQUIRE(s->models[1].payload);
  CHECK(s->models[1].payload->kind == payload_kind::random);
  REQUIRE(s->priorities.size() == 2);
  CHECK(s->priorities[1].level == 2);
  CHECK(s->priorities[1].weight == 4);
  REQUIRE(s->phases.size() == 6);
  const auto& p = s->phases;
  CHECK(p[0].name == "warm");
  CHECK(*p[0].requests == 100);
  CHECK_FALSE(p[0].duration_s);
  CHECK(p[0].arrival.kind == arrival_kind::constant);
  CHECK(p[0].arrival.rate == 50);
  CHECK(p[1].name == "phase2");
  CHECK(*p[1].duration_s == 10);
  CHECK(p[1].arrival.kind == arrival_kind::poisson);
  CHECK(s->slo_ms_of(p[1]) == 10);
  CHECK(s->timeout_ms_of(p[1]) == 50);
  CHECK(s->slo_ms_of(p[0]) == 25);
  CHECK(p[2].arrival.kind == arrival_kind::bursty);
  CHECK(p[2].arrival.on_s == 0.5);
  CHECK(p[2].arrival.off_s == 1.5);
  CHECK(p[3].arrival.kind == arrival_kind::gamma);
  CHECK(p[3].arrival.cv == 3);
  CHECK(p[4].arrival.kind == arrival_kind::ramp);
  CHECK(p[4].arrival.rate == 10);
  CHECK(p[4].arrival.to_rate == 300);
  CHECK(s->models_of(p[4]).size() == 1);
  CHECK(s->models_of(p[4])[0].name == "b");
  CHECK(s->models_of(p[3]).size() == 2);
  CHECK(p[5].arrival.kind == arrival_kind::closed);
  CHECK(p[5].arrival.concurrency == 4);
  CHECK(p[5].arrival.think_ms == 2);
  CHECK(*p[5].requests == 50);
  CHECK(s->all_models() == std::vector<std::string>{"a", "b"});
}

TEST_CASE("scenario errors name the file, line and key path") {
  CHECK(error_of("models: [m]\nphases:\n  - duration_s: 5\n    arrival: {process: poisson, rate: fast}\n") ==
        "s.yaml:4: phases[0].arrival.rate: expected a number > 0 or a percentage of the capacity "
        "(40%), got 'fast'");
  CHECK(error_of("models: [m]\nphases:\n  - duration_s: 5\n    arrival: {process: warp, rate: 1}\n") ==
        "s.yaml:4: phases[0].arrival.process: expected one of constant, poisson, bursty, gamma, "
        "ramp, closed, got 'warp'");
  CHECK(error_of("models: [m]\nphases:\n  - duration_s: 5\n    arrival: {process: closed, rate: 5, concurrency: 2}\n") ==
        "s.yaml:4: phases[0].arrival.rate: unknown key, expected one of process, concurrency, think_ms");
  CHECK(error_of("models: [m]\nphases:\n  - duration_s: 5\n    arrival: {process: gamma, rate: 5}\n") ==
        "s.yaml:4: phases[0].arrival.cv: required for process gamma");
  CHECK(error_of("models: [m]\nphases:\n  - arrival: {process: poisson, rate: 5}\n") ==
        "s.yaml:3: phases[0]: needs duration_s or requests (or both: whichever comes first)");
  CHECK(error_of("models: [m]\nphases:\n  - requests: 5\n    arrival: {process: ramp, rate: 1, to_rate: 5}\n") ==
        "s.yaml:3: phases[0].duration_s: required for a ramp (the rate changes over time)");
  CHECK(error_of("models: [m]\ntransport: grpc\nphases: []\n") ==
        "s.yaml:2: transport: expected one of http_json, http_binary, in_process, got 'grpc'");
  CHECK(error_of("models: [m]\nphases:\n  - {requests: 0, arrival: {process: poisson, rate: 5}}\n") ==
        "s.yaml:3: phases[0].requests: expected an integer >= 1, got '0'");
  CHECK(error_of("phases:\n  - {requests: 3, arrival: {process: poisson, rate: 5}}\n") ==
        "s.yaml:1: phases[0].models: no model to send to: give `models` at the top or in the phase");
  CHECK(error_of("models: [m]\npayload: {kind: npy}\nphases:\n  - {requests: 3, arrival: {process: poisson, rate: 5}}\n") ==
        "s.yaml:2: payload.images: required for a dataset payload");
  CHECK(error_of("models: [m]\nspeed: 3\nphases: []\n") ==
        "s.yaml:2: speed: unknown key, expected one of name, seed, transport, connections, "
        "timeout_ms, slo_ms, payload, models, priorities, phases");
  CHECK(error_of("models: [{name: m, weight: -1}]\nphases: []\n") ==
        "s.yaml:1: models[0].weight: expected a number > 0, got '-1'");
  CHECK(error_of("models: [m]\nphases: [\n") .find("s.yaml:") == 0);
}

TEST_CASE("the scenarios shipped in scenarios/ parse") {
  for (const char* name : {"quickstart", "overload", "soak", "mixed"}) {
    auto s = load_scenario(std::filesystem::path(TROUPE_SOURCE_DIR) / "scenarios" / (std::string(name) + ".yaml"));
    REQUIRE_MESSAGE(s, s.error().to_string());
    CHECK(s->name == name);
    CHECK(s->phases.size() >= 2);
  }
}

TEST_CASE("a rate written as a percentage is that share of the capacity given") {
  std::mt19937 rng{std::random_device{}()};
  const double capacity = std::uniform_real_distribution<double>(100, 20000)(rng);
  const std::string yaml = R"(models: [m]
phases:
  - {duration_s: 5, arrival: {process: poisson, rate: 40%}}
  - {duration_s: 5, arrival: {process: constant, rate: 12.5%}}
  - {duration_s: 5, arrival: {process: ramp, rate: 0%, to_rate: 120%}}
  - {duration_s: 5, arrival: {process: bursty, rate: 250, on_s: 1, off_s: 1}}
)";
  auto s = parse_scenario(yaml, "s.yaml", {}, capacity);
  REQUIRE_MESSAGE(s, s.error().to_string());
  REQUIRE(s->phases.size() == 4);
  CHECK(s->phases[0].arrival.rate == doctest::Approx(0.4 * capacity));
  CHECK(s->phases[1].arrival.rate == doctest::Approx(0.125 * capacity));
  CHECK(s->phases[2].arrival.rate == 0);
  CHECK(s->phases[2].arrival.to_rate == doctest::Approx(1.2 * capacity));
  // Absolute rates are untouched by a capacity.
  CHECK(s->phases[3].arrival.rate == 250);
}

TEST_CASE("a relative rate without a capacity is an error naming the line and key") {
  CHECK(error_of("models: [m]\nphases:\n  - duration_s: 5\n    arrival: {process: poisson, rate: 5}\n"
                 "  - duration_s: 5\n    arrival: {process: ramp, rate: 1, to_rate: 70%}\n") ==
        "s.yaml:6: phases[1].arrival.to_rate: the relative rate 70% needs a capacity: pass "
        "`troupe load --capacity REQ_PER_S` (the measured requests per second)");
  // A scenario with absolute rates only needs none.
  CHECK(parse_scenario("models: [m]\nphases:\n  - {requests: 3, arrival: {process: poisson, rate: 5}}\n",
                       "s.yaml"));
}

TEST_CASE("malformed relative rates and capacities are refused") {
  const std::string form = "expected a number > 0 or a percentage of the capacity (40%), got ";
  for (const char* bad : {"%", "x%", "-5%", "0%", "5%%", "nan%"}) {
    const std::string yaml = fmt::format(
        "models: [m]\nphases:\n  - {{duration_s: 5, arrival: {{process: poisson, rate: '{}'}}}}\n",
        bad);
    auto s = parse_scenario(yaml, "s.yaml", {}, 1000.0);
    REQUIRE_FALSE(s);
    CHECK(s.error().message() == fmt::format("s.yaml:3: phases[0].arrival.rate: {}'{}'", form, bad));
  }
  auto s = parse_scenario("models: [m]\nphases:\n  - {requests: 3, arrival: {process: poisson, rate: 5%}}\n",
                          "s.yaml", {}, 0.0);
  REQUIRE_FALSE(s);
  CHECK(s.error().message() == "s.yaml: capacity must be a number > 0, got 0");
}

TEST_CASE("the capacity-relative scenarios in scenarios/ parse with a capacity and refuse without") {
  const auto dir = std::filesystem::path(TROUPE_SOURCE_DIR) / "scenarios";
  auto sweep = load_scenario(dir / "batching-sweep.yaml", 1000.0);
  REQUIRE_MESSAGE(sweep, sweep.error().to_string());
  std::vector<double> rates;
  for (const auto& p : sweep->phases)
    if (p.name != "warm-up")
      rates.push_back(p.arrival.rate);
  CHECK(rates == std::vector<double>{100, 250, 400, 550, 700, 850, 1000, 1200});
  auto tail = load_scenario(dir / "tail.yaml", 1000.0);
  REQUIRE_MESSAGE(tail, tail.error().to_string());
  CHECK(tail->phases.back().arrival.rate == doctest::Approx(700));
  for (const char* name : {"batching-sweep", "tail"}) {
    auto refused = load_scenario(dir / (std::string(name) + ".yaml"));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message().find("needs a capacity") != std::string::npos);
  }
  auto capacity = load_scenario(dir / "capacity.yaml");
  REQUIRE_MESSAGE(capacity, capacity.error().to_string());
  CHECK(capacity->phases.back().arrival.kind == arrival_kind::closed);
}
