// Tests for config.yaml parsing and the model repository scan.
#include <doctest/doctest.h>

#include <fstream>
#include <unistd.h>

#include "runtime/config/model_config.hpp"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

// The error of parsing `yaml`; fails the test when it parses.
status error_of(const std::string& yaml) {
  auto c = parse_model_config(yaml, "m/config.yaml");
  REQUIRE_MESSAGE(!c.has_value(), "parsed: " << yaml);
  return c.error();
}

bool contains(const status& st, const std::string& text) {
  return st.message().find(text) != std::string::npos;
}

/// A scratch repository folder, removed at the end of the test.
struct scratch_repo {
  fs::path root;
  explicit scratch_repo(const std::string& tag)
      : root(fs::temp_directory_path() /
             ("troupe_repo_" + tag + "_" + std::to_string(::getpid()))) {
    fs::remove_all(root);
    fs::create_directories(root);
  }
  ~scratch_repo() { fs::remove_all(root); }
  void write(const std::string& rel, const std::string& text = "onnx") const {
    fs::create_directories((root / rel).parent_path());
    std::ofstream(root / rel) << text;
  }
};

} // namespace

TEST_CASE("parse_model_config reads Triton's keys and troupe's additions") {
  const std::string yaml = R"(
name: resnet
max_batch_size: 32
input:
  - {name: x, data_type: TYPE_FP32, dims: [3, 224, 224]}
output:
  - name: y
    data_type: FP16
    dims: [-1]
dynamic_batching:
  preferred_batch_size: [16, 8]
  max_queue_delay_microseconds: 500
  preserve_ordering: true
  priority_levels: 3
  default_priority_level: 2
  default_queue_policy:
    max_queue_size: 64
    default_timeout_microseconds: 10000
    allow_timeout_override: true
    timeout_action: DELAY
  priority_queue_policy:
    1: {max_queue_size: 8, timeout_action: REJECT}
allowed_batch_sizes: [32, 4, 16]
max_batches_in_flight: 3
instance_group:
  - {count: 2, kind: KIND_GPU, gpus: [0, 1]}
  - {kind: CPU}
parallelism: {pipeline_stages: auto, tensor_parallel: 2, micro_batch: 4, stage_transport: exchange}
version_policy: {latest: {num_versions: 2}}
)";
  auto c = parse_model_config(yaml, "resnet/config.yaml");
  REQUIRE_MESSAGE(c.has_value(), (c ? std::string() : c.error().to_string()));
  CHECK(c->name == "resnet");
  CHECK(c->max_batch_size == 32);
  REQUIRE(c->inputs.size() == 1);
  CHECK(c->inputs[0].name == "x");
  CHECK(c->inputs[0].type == dtype::f32);
  CHECK(*c->inputs[0].dims == std::vector<int64_t>{3, 224, 224});
  CHECK(c->outputs[0].type == dtype::f16);
  CHECK(*c->outputs[0].dims == std::vector<int64_t>{-1});
  REQUIRE(c->dynamic_batching);
  const auto& db = *c->dynamic_batching;
  CHECK(db.preferred_batch_size == std::vector<int64_t>{8, 16});
  CHECK(db.max_queue_delay == microseconds{500});
  CHECK(db.preserve_ordering);
  CHECK(db.priority_levels == 3);
  CHECK(db.default_priority_level == 2);
  CHECK(db.default_queue_policy.max_queue_size == 64);
  CHECK(db.default_queue_policy.default_timeout == microseconds{10000});
  CHECK(db.default_queue_policy.allow_timeout_override);
  CHECK(db.default_queue_policy.action == timeout_action::delay);
  REQUIRE(db.priority_queue_policy.count(1) == 1);
  CHECK(db.priority_queue_policy.at(1).max_queue_size == 8);
  CHECK(db.priority_queue_policy.at(1).action == timeout_action::reject);
  CHECK(c->allowed_batch_sizes == std::vector<int64_t>{4, 16, 32});
  CHECK(c->max_batches_in_flight == 3);
  REQUIRE(c->instance_groups.size() == 2);
  CHECK(c->instance_groups[0].count == 2);
  CHECK(c->instance_groups[0].kind == instance_kind::gpu);
  CHECK(c->instance_groups[0].gpus == std::vector<int64_t>{0, 1});
  CHECK(c->instance_groups[1].kind == instance_kind::cpu);
  CHECK(c->instance_groups[1].count == 1);
  CHECK(c->parallelism.pipeline_stages == parallelism_config::automatic);
  CHECK(c->parallelism.tensor_parallel == 2);
  CHECK(c->parallelism.micro_batch == 4);
  CHECK(c->parallelism.exchange_links);
  CHECK(c->versions.which == version_policy::kind::latest);
  CHECK(c->versions.num_versions == 2);
}

TEST_CASE("parse_model_config gives defaults for an empty file") {
  auto c = parse_model_config("", "m/config.yaml");
  REQUIRE(c);
  CHECK(c->max_batch_size == 0);
  CHECK(!c->dynamic_batching);
  CHECK(c->max_batches_in_flight == 2);
  CHECK(c->parallelism.pipeline_stages == 1);
  CHECK_FALSE(c->parallelism.exchange_links); // activations ride in the messages
  CHECK(c->versions.which == version_policy::kind::latest);
  CHECK(c->versions.num_versions == 1);
  auto empty_block = parse_model_config("max_batch_size: 4\ndynamic_batching:\n", "m/config.yaml");
  REQUIRE(empty_block);
  CHECK(empty_block->dynamic_batching);
}

TEST_CASE("config errors name the file, the key path and the expected form") {
  auto action = error_of(
      "max_batch_size: 4\ndynamic_batching:\n  default_queue_policy:\n    timeout_action: DROP\n");
  CHECK(action.code() == errc::invalid_argument);
  CHECK(contains(action, "m/config.yaml:4"));
  CHECK(contains(action, "dynamic_batching.default_queue_policy.timeout_action"));
  CHECK(contains(action, "expected REJECT or DELAY, got 'DROP'"));

  auto unknown = error_of("max_batch_size: 4\ndynamic_batching: {max_queue_delay: 5}\n");
  CHECK(contains(unknown, "dynamic_batching.max_queue_delay: unknown key"));
  CHECK(contains(unknown, "max_queue_delay_microseconds"));

  auto top = error_of("max_batch: 4\n");
  CHECK(contains(top, "m/config.yaml:1: max_batch: unknown key, expected one of name, "));

  auto negative = error_of("max_batch_size: -1\n");
  CHECK(contains(negative, "max_batch_size: expected an integer in 0.."));
  CHECK(contains(negative, "got '-1'"));

  auto text = error_of("max_batch_size: many\n");
  CHECK(contains(text, "got 'many'"));

  auto kind = error_of("instance_group:\n  - {kind: TPU}\n");
  CHECK(contains(kind, "instance_group[0].kind: expected KIND_CPU, KIND_GPU or KIND_AUTO"));

  auto dims = error_of("max_batch_size: 2\ninput:\n  - {name: x, dims: [3, 0]}\n");
  CHECK(contains(dims, "input[0].dims[1]: expected a positive dimension or -1"));

  auto type = error_of("output:\n  - {name: y, data_type: TYPE_FLOAT}\n");
  CHECK(contains(type, "output[0].data_type: expected a data type such as TYPE_FP32 or FP32"));

  auto no_name = error_of("input:\n  - {data_type: FP32}\n");
  CHECK(contains(no_name, "input[0].name: missing"));

  auto boolean = error_of("max_batch_size: 2\ndynamic_batching: {preserve_ordering: maybe}\n");
  CHECK(contains(boolean, "dynamic_batching.preserve_ordering: expected true or false"));

  auto stages = error_of("parallelism: {pipeline_stages: some}\n");
  CHECK(contains(stages, "parallelism.pipeline_stages: expected an integer >= 1 or auto"));
  auto transport = error_of("parallelism: {stage_transport: pigeon}\n");
  CHECK(contains(transport, "parallelism.stage_transport: expected message or exchange"));

  auto twice = error_of("max_batch_size: 2\nmax_batch_size: 3\n");
  CHECK(contains(twice, "max_batch_size: key given twice"));

  auto yaml = parse_model_config("max_batch_size: [1,\n", "m/config.yaml");
  REQUIRE(!yaml);
  CHECK(yaml.error().code() == errc::parse_error);
  CHECK(contains(yaml.error(), "m/config.yaml:"));
}

TEST_CASE("config values that contradict each other are errors naming the key") {
  auto preferred =
      error_of("max_batch_size: 8\ndynamic_batching: {preferred_batch_size: [4, 16]}\n");
  CHECK(contains(preferred, "dynamic_batching.preferred_batch_size: expected sizes in 1..8 "
                            "(max_batch_size), got 16"));
  auto zero_pref = error_of("max_batch_size: 8\ndynamic_batching: {preferred_batch_size: [0]}\n");
  CHECK(contains(zero_pref, "dynamic_batching.preferred_batch_size[0]: expected an integer >= 1"));

  auto level = error_of(
      "max_batch_size: 8\ndynamic_batching: {priority_levels: 2, default_priority_level: 3}\n");
  CHECK(contains(level, "dynamic_batching.default_priority_level: expected a level in 1..2"));

  auto policy_level = error_of("max_batch_size: 8\ndynamic_batching:\n  priority_levels: 2\n"
                               "  priority_queue_policy:\n    7: {max_queue_size: 1}\n");
  CHECK(contains(policy_level, "dynamic_batching.priority_queue_policy.7: expected a level"));

  auto queue_size = error_of("max_batch_size: 8\ndynamic_batching:\n  default_queue_policy: "
                             "{max_queue_size: -2}\n");
  CHECK(contains(queue_size, "dynamic_batching.default_queue_policy.max_queue_size: expected an "
                             "integer >= 0"));

  auto unbatched = error_of("max_batch_size: 0\ndynamic_batching: {}\n");
  CHECK(contains(unbatched, "dynamic_batching: expected max_batch_size > 0"));

  auto allowed = error_of("max_batch_size: 8\nallowed_batch_sizes: [2, 4]\n");
  CHECK(contains(allowed, "allowed_batch_sizes: expected the largest size to be max_batch_size 8"));

  auto credits = error_of("max_batches_in_flight: 0\n");
  CHECK(contains(credits, "max_batches_in_flight: expected an integer >= 1"));

  auto gpus = error_of("instance_group:\n  - {kind: KIND_CPU, gpus: [0]}\n");
  CHECK(contains(gpus, "instance_group[0].gpus: expected no gpus for kind KIND_CPU"));

  auto micro = error_of("max_batch_size: 4\nparallelism: {micro_batch: 8}\n");
  CHECK(contains(micro, "parallelism.micro_batch: expected at most max_batch_size 4"));

  auto versions = error_of("version_policy: {latest: {num_versions: 1}, all: {}}\n");
  CHECK(contains(versions, "version_policy: expected exactly one of latest, all, specific"));

  auto dup = error_of("input:\n  - {name: x}\n  - {name: x}\n");
  CHECK(contains(dup, "input[1].name: 'x' is listed twice"));
}

TEST_CASE("model names allow [A-Za-z0-9_.-] only and never . or ..") {
  CHECK(is_valid_model_name("resnet-18_v1.2"));
  CHECK(!is_valid_model_name(""));
  CHECK(!is_valid_model_name("."));
  CHECK(!is_valid_model_name(".."));
  CHECK(!is_valid_model_name("a/b"));
  CHECK(!is_valid_model_name("a b"));
  CHECK(!is_valid_model_name("caf\xc3\xa9"));
}

TEST_CASE("scan_repository lists models with versions latest first and applies version_policy") {
  scratch_repo repo("ok");
  repo.write("cnn/config.yaml", "max_batch_size: 8\nversion_policy: {latest: {num_versions: 2}}\n");
  repo.write("cnn/1/model.onnx");
  repo.write("cnn/10/model.onnx");
  repo.write("cnn/3/model.onnx");
  repo.write("bert/2/model.onnx"); // no config: defaults
  repo.write("bert/config.yaml", "name: bert\nversion_policy: {specific: {versions: [2]}}\n");
  repo.write("README.md", "not a model");
  repo.write(".git/HEAD", "hidden");
  auto models = scan_repository(repo.root);
  REQUIRE_MESSAGE(models.has_value(), (models ? std::string() : models.error().to_string()));
  REQUIRE(models->size() == 2);
  CHECK((*models)[0].name == "bert");
  CHECK((*models)[0].serving == std::vector<int64_t>{2});
  const auto& cnn = (*models)[1];
  CHECK(cnn.name == "cnn");
  CHECK(cnn.config.name == "cnn");
  CHECK(cnn.config.max_batch_size == 8);
  CHECK(cnn.versions == std::vector<int64_t>{10, 3, 1});
  CHECK(cnn.serving == std::vector<int64_t>{10, 3});
  CHECK(cnn.model_file(3) == repo.root / "cnn" / "3" / "model.onnx");
}

TEST_CASE("scan_repository rejects bad model names, bad versions and bad configs") {
  {
    scratch_repo repo("badname");
    repo.write("bad name/1/model.onnx");
    auto r = scan_repository(repo.root);
    REQUIRE(!r);
    CHECK(contains(r.error(), "model folder 'bad name'"));
  }
  {
    scratch_repo repo("badversion");
    repo.write("m/v1/model.onnx");
    auto r = scan_repository(repo.root);
    REQUIRE(!r);
    CHECK(contains(r.error(), "version folder 'v1' is not a positive integer"));
  }
  {
    scratch_repo repo("zeroversion");
    repo.write("m/0/model.onnx");
    CHECK(!scan_repository(repo.root));
  }
  {
    scratch_repo repo("nomodel");
    repo.write("m/1/weights.bin");
    auto r = scan_repository(repo.root);
    REQUIRE(!r);
    CHECK(r.error().code() == errc::not_found);
    CHECK(contains(r.error(), "missing model.onnx"));
  }
  {
    scratch_repo repo("noversions");
    repo.write("m/config.yaml", "max_batch_size: 1\n");
    CHECK(contains(scan_repository(repo.root).error(), "no version folder"));
  }
  {
    scratch_repo repo("badconfig");
    repo.write("m/1/model.onnx");
    repo.write("m/config.yaml", "max_batch_size: 4\nbatching: {}\n");
    auto r = scan_repository(repo.root);
    REQUIRE(!r);
    CHECK(contains(r.error(), "config.yaml:2: batching: unknown key"));
  }
  {
    scratch_repo repo("wrongname");
    repo.write("m/1/model.onnx");
    repo.write("m/config.yaml", "name: other\n");
    CHECK(contains(scan_repository(repo.root).error(), "name: expected the folder name 'm'"));
  }
  {
    scratch_repo repo("missingversion");
    repo.write("m/1/model.onnx");
    repo.write("m/config.yaml", "version_policy: {specific: {versions: [1, 4]}}\n");
    CHECK(contains(scan_repository(repo.root).error(), "version 4 has no folder"));
  }
  CHECK(scan_repository("/nonexistent/troupe/repo").error().code() == errc::not_found);
}

TEST_CASE("parallelism values out of range are errors that name the parallelism key") {
  auto stages0 = error_of("parallelism: {pipeline_stages: 0}\n");
  CHECK(contains(stages0, "parallelism.pipeline_stages: expected an integer >= 1 or auto"));
  CHECK(contains(stages0, "got '0'"));
  auto negative = error_of("parallelism: {pipeline_stages: -2}\n");
  CHECK(contains(negative, "parallelism.pipeline_stages: expected an integer >= 1 or auto"));
  auto fraction = error_of("parallelism: {pipeline_stages: 1.5}\n");
  CHECK(contains(fraction, "parallelism.pipeline_stages:"));
  auto tp = error_of("parallelism: {tensor_parallel: 0}\n");
  CHECK(contains(tp, "parallelism.tensor_parallel: expected an integer >= 1"));
  auto tp_auto = error_of("parallelism: {tensor_parallel: auto}\n");
  CHECK(contains(tp_auto, "parallelism.tensor_parallel: expected an integer >= 1"));
  auto micro0 = error_of("max_batch_size: 4\nparallelism: {micro_batch: 0}\n");
  CHECK(contains(micro0, "parallelism.micro_batch:"));
  auto unbatched = error_of("parallelism: {micro_batch: 2}\n");
  CHECK(contains(unbatched, "parallelism.micro_batch: expected no micro_batch when "
                            "max_batch_size is 0"));
  auto unknown = error_of("parallelism: {stages: 2}\n");
  CHECK(contains(unknown, "parallelism.stages: unknown key"));
  auto list = error_of("parallelism: [2]\n");
  CHECK(contains(list, "parallelism"));
  auto ok = parse_model_config("max_batch_size: 8\nparallelism: {pipeline_stages: 3, micro_batch: 2}\n",
                               "m/config.yaml");
  REQUIRE(ok);
  CHECK(ok->parallelism.pipeline_stages == 3);
  CHECK(ok->parallelism.micro_batch == 2);
  CHECK(ok->parallelism.tensor_parallel == 1);
}
