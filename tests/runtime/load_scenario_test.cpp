// Tests for load scenario parsing: every setting read, and errors that name line and key.
#include <doctest/doctest.h>

#include <filesystem>

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
        "s.yaml:4: phases[0].arrival.rate: expected a number > 0, got 'fast'");
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
