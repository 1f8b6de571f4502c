// dataset: request payloads for load tests, from Fashion-MNIST IDX files, .npy records or
// random tensors shaped from a model's metadata.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "kernels/tensor.hpp"
#include "runtime/graph.hpp"
#include "runtime/load/scenario.hpp"

namespace troupe::load {

/// Reads an IDX file (the MNIST format: magic, dims, big-endian sizes, data), gzip-compressed
/// or raw. Only unsigned-byte data (type 0x08), which is what (Fashion-)MNIST holds.
expected<tensor> read_idx(const std::filesystem::path& file);

/// Records (first dimension) as float32, with optional integer labels.
struct dataset {
  tensor records;              // [N, ...] float32
  std::vector<int64_t> labels; // empty, or N labels
  int64_t size() const { return records.defined() ? records.dim(0) : 0; }
};

/// Loads a dataset payload: uint8 data becomes (x / 255 − mean) / std, other numeric types
/// are converted to float32 as they are.
expected<dataset> load_dataset(const payload_spec& spec);

/// The inputs of one request and its label when the data has labels.
struct payload {
  std::vector<tensor> inputs;
  std::optional<int64_t> label;
};

/// Hands out request inputs for one model, cycling through the dataset (or a pool of random
/// tensors) deterministically. Inputs are views; nothing is copied per request.
class payload_source {
public:
  /// `inputs` is the model's declared inputs (batch dim first when it batches). A dataset
  /// feeds a model with exactly one input whose one-row size equals a record's size.
  static expected<payload_source> make(const std::string& model,
                                       const std::vector<value_info>& inputs,
                                       const payload_spec& spec, uint64_t seed);

  payload next();
  bool has_labels() const { return !data_.labels.empty(); }
  int64_t records() const { return data_.size(); }

private:
  dataset data_;
  shape row_dims_;                            // one record as the model wants it
  std::vector<std::vector<tensor>> random_;   // pool of random inputs
  uint64_t cursor_ = 0;
};

/// The class a row of logits predicts (argmax over the first row of a float32 tensor).
std::optional<int64_t> predicted_class(const tensor& logits);

} // namespace troupe::load
