// npy: reads and writes NumPy .npy files (little-endian, C order).
#pragma once

#include <string>

#include "kernels/tensor.hpp"

namespace troupe {

expected<tensor> load_npy(const std::string& path);
/// Parses .npy bytes held in memory; `source` names them in messages.
expected<tensor> parse_npy(const std::string& bytes, const std::string& source);
status save_npy(const std::string& path, const tensor& t);

} // namespace troupe
