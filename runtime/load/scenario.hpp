// scenario: a load test script (phases, arrival processes, model and priority mix, payloads)
// parsed from YAML, with errors that name the file, line and key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "kernels/status.hpp"

namespace troupe::load {

enum class arrival_kind : uint8_t {
  constant, // evenly spaced sends at `rate`
  poisson,  // exponential gaps (CV 1)
  bursty,   // Poisson at `rate` during `on_s`, silence for `off_s`, repeated
  gamma,    // gamma-distributed gaps with mean 1/rate and coefficient of variation `cv`
  ramp,     // rate grows linearly from `rate` to `to_rate` over the phase (Poisson thinning-free)
  closed,   // `concurrency` clients, each sends again when its reply arrives (+ think time)
};

const char* to_string(arrival_kind kind);

struct arrival_spec {
  arrival_kind kind = arrival_kind::poisson;
  // Requests per second; YAML may write either as a share of the capacity (`rate: 40%`).
  double rate = 0;       // ramp: the start rate
  double to_rate = 0;    // ramp only: the end rate
  double cv = 1;         // gamma only
  double on_s = 1;       // bursty only
  double off_s = 1;      // bursty only
  int64_t concurrency = 0; // closed only
  double think_ms = 0;     // closed only: pause between a reply and the next send
};

enum class payload_kind : uint8_t { random, fashion_mnist, npy };

struct payload_spec {
  payload_kind kind = payload_kind::random;
  std::string images; // fashion_mnist: IDX images (.gz or raw); npy: the records (first dim)
  std::string labels; // optional: IDX labels or a .npy of integer labels
  double mean = 0;    // dataset bytes become (x / 255 - mean) / std for uint8 data
  double stddev = 1;
  std::optional<int64_t> limit; // use only the first N records
};

struct weighted_model {
  std::string name;
  double weight = 1;
  std::optional<payload_spec> payload; // overrides the scenario's payload for this model
};

struct weighted_priority {
  uint32_t level = 0; // 0 = the model's default
  double weight = 1;
};

struct phase_spec {
  std::string name;
  std::optional<double> duration_s;
  std::optional<int64_t> requests;
  arrival_spec arrival;
  std::vector<weighted_model> models;        // empty: the scenario's
  std::vector<weighted_priority> priorities; // empty: the scenario's
  std::optional<double> timeout_ms;          // per request; unset: the scenario's
  std::optional<double> slo_ms;              // unset: the scenario's
};

enum class transport_kind : uint8_t { http_json, http_binary, in_process };

const char* to_string(transport_kind kind);

struct scenario {
  std::string name;
  uint64_t seed = 1;
  transport_kind transport = transport_kind::http_json;
  int64_t connections = 16; // HTTP connection pool size
  double timeout_ms = 10000;
  double slo_ms = 100;
  payload_spec payload;
  std::vector<weighted_model> models;
  std::vector<weighted_priority> priorities; // empty: every request at level 0
  std::vector<phase_spec> phases;

  /// The phase's effective settings (the phase's own, else the scenario's).
  const std::vector<weighted_model>& models_of(const phase_spec& p) const {
    return p.models.empty() ? models : p.models;
  }
  const std::vector<weighted_priority>& priorities_of(const phase_spec& p) const {
    return p.priorities.empty() ? priorities : p.priorities;
  }
  double timeout_ms_of(const phase_spec& p) const { return p.timeout_ms.value_or(timeout_ms); }
  double slo_ms_of(const phase_spec& p) const { return p.slo_ms.value_or(slo_ms); }
  /// Every model named anywhere in the scenario, in first-mention order.
  std::vector<std::string> all_models() const;
};

/// Parses scenario YAML; `file` names it in errors ("s.yaml:12: phases[1].arrival.rate:
/// expected a number > 0 or a percentage of the capacity (40%), got 'fast'"). Relative dataset
/// paths are taken as relative to `base_dir`. A rate written as a percentage (`rate: 40%`)
/// becomes that share of `capacity` (requests per second, measured by the caller); without a
/// capacity such a rate is an error naming its line and key.
expected<scenario> parse_scenario(const std::string& yaml_text, const std::string& file,
                                  const std::filesystem::path& base_dir = {},
                                  std::optional<double> capacity = std::nullopt);

expected<scenario> load_scenario(const std::filesystem::path& file,
                                 std::optional<double> capacity = std::nullopt);

} // namespace troupe::load
