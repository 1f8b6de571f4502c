// dataset: request payloads for load tests, from Fashion-MNIST IDX files, .npy records or
// random tensors shaped from a model's metadata.
#include "runtime/load/dataset.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "runtime/npy.hpp"
#include "runtime/random_tensor.hpp"

namespace troupe::load {

namespace {

/// The whole file, inflated when it is gzip (zlib's gz reader passes raw files through).
expected<std::string> read_maybe_gzip(const std::filesystem::path& file) {
  gzFile f = gzopen(file.c_str(), "rb");
  if (!f)
    return make_error(errc::not_found, "{}: cannot open", file.string());
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      std::string why = gzerror(f, &code);
      gzclose(f);
      return make_error(errc::parse_error, "{}: corrupt gzip data: {}", file.string(), why);
    }
    if (n == 0)
      break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (size_t{1} << 32))
      return gzclose(f), make_error(errc::out_of_range, "{}: larger than 4 GiB", file.string());
  }
  gzclose(f);
  return out;
}

uint32_t big_endian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

tensor to_float(const tensor& t, double mean, double stddev) {
  tensor out = tensor::empty(dtype::f32, t.dims());
  float* o = out.data<float>();
  const int64_t n = t.numel();
  if (t.type() == dtype::u8) {
    const uint8_t* in = t.data<uint8_t>();
    for (int64_t i = 0; i < n; ++i)
      o[i] = static_cast<float>((in[i] / 255.0 - mean) / stddev);
  } else if (t.type() == dtype::f32) {
    std::memcpy(o, t.raw(), t.nbytes());
  } else if (t.type() == dtype::f64) {
    for (int64_t i = 0; i < n; ++i)
      o[i] = static_cast<float>(t.data<double>()[i]);
  }
  return out;
}

expected<std::vector<int64_t>> labels_of(const tensor& t, const std::string& file) {
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  switch (t.type()) {
    case dtype::u8: std::copy_n(t.data<uint8_t>(), out.size(), out.begin()); break;
    case dtype::i32: std::copy_n(t.data<int32_t>(), out.size(), out.begin()); break;
    case dtype::i64: std::copy_n(t.data<int64_t>(), out.size(), out.begin()); break;
    default:
      return make_error(errc::invalid_argument, "{}: labels must be uint8, int32 or int64, not {}",
                        file, to_string(t.type()));
  }
  return out;
}

} // namespace

expected<tensor> read_idx(const std::filesystem::path& file) {
  auto bytes = read_maybe_gzip(file);
  if (!bytes)
    return bytes.error();
  const std::string& b = *bytes;
  const auto* p = reinterpret_cast<const unsigned char*>(b.data());
  if (b.size() < 4 || p[0] != 0 || p[1] != 0)
    return make_error(errc::parse_error, "{}: not an IDX file (bad magic)", file.string());
  if (p[2] != 0x08)
    return make_error(errc::unsupported, "{}: IDX data type 0x{:02x}; only unsigned bytes (0x08)",
                      file.string(), p[2]);
  const size_t rank = p[3];
  if (rank == 0 || b.size() < 4 + 4 * rank)
    return make_error(errc::parse_error, "{}: truncated IDX header", file.string());
  shape dims;
  for (size_t i = 0; i < rank; ++i)
    dims.push_back(big_endian32(p + 4 + 4 * i));
  auto n = checked_numel(dims);
  if (!n)
    return n.error().with_context(file.string());
  const size_t header = 4 + 4 * rank;
  if (b.size() - header != static_cast<size_t>(*n))
    return make_error(errc::parse_error, "{}: IDX header says {} bytes of data, file has {}",
                      file.string(), *n, b.size() - header);
  tensor t = tensor::empty(dtype::u8, dims);
  std::memcpy(t.raw(), b.data() + header, static_cast<size_t>(*n));
  return t;
}

expected<dataset> load_dataset(const payload_spec& spec) {
  dataset d;
  auto read = [&](const std::string& file) -> expected<tensor> {
    if (spec.kind == payload_kind::fashion_mnist)
      return read_idx(file);
    return load_npy(file);
  };
  auto raw = read(spec.images);
  if (!raw)
    return raw.error();
  if (raw->rank() < 1 || raw->dim(0) == 0)
    return make_error(errc::invalid_argument, "{}: no records", spec.images);
  const auto t = raw->type();
  if (t != dtype::u8 && t != dtype::f32 && t != dtype::f64)
    return make_error(errc::unsupported, "{}: records must be uint8, float32 or float64, not {}",
                      spec.images, to_string(t));
  int64_t n = raw->dim(0);
  if (spec.limit)
    n = std::min(n, *spec.limit);
  d.records = to_float(raw->slice_rows(0, n), spec.mean, spec.stddev);
  if (!spec.labels.empty()) {
    auto lab = read(spec.labels);
    if (!lab)
      return lab.error();
    auto values = labels_of(*lab, spec.labels);
    if (!values)
      return values.error();
    if (static_cast<int64_t>(values->size()) < n)
      return make_error(errc::invalid_argument, "{}: {} labels for {} records", spec.labels,
                        values->size(), n);
    values->resize(static_cast<size_t>(n));
    d.labels = std::move(*values);
  }
  return d;
}

expected<payload_source> payload_source::make(const std::string& model,
                                              const std::vector<value_info>& inputs,
                                              const payload_spec& spec, uint64_t seed) {
  payload_source src;
  if (spec.kind == payload_kind::random) {
    // A small pool, so the server cannot cache one answer but we do not allocate per request.
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 16; ++i) {
      std::vector<tensor> one;
      for (const auto& in : inputs)
        one.push_back(random_tensor(in.type, concrete_dims(in, 1), rng));
      src.random_.push_back(std::move(one));
    }
    return src;
  }
  if (inputs.size() != 1)
    return make_error(errc::invalid_argument,
                      "model {}: a dataset payload feeds models with one input, it has {}", model,
                      inputs.size());
  if (inputs[0].type != dtype::f32)
    return make_error(errc::unsupported, "model {}: input {} is {}, dataset payloads are float32",
                      model, inputs[0].name, to_string(inputs[0].type));
  auto d = load_dataset(spec);
  if (!d)
    return d.error();
  src.data_ = std::move(*d);
  src.row_dims_ = concrete_dims(inputs[0], 1);
  const int64_t record = src.data_.records.numel() / src.data_.size();
  if (numel_of(src.row_dims_) != record)
    return make_error(errc::invalid_argument,
                      "model {}: input {} wants {} values per request ({}), a record of {} has {}",
                      model, inputs[0].name, numel_of(src.row_dims_),
                      troupe::to_string(std::span<const int64_t>(src.row_dims_)),
                      spec.images, record);
  // Start somewhere the seed chooses, so two models in one scenario do not move in lockstep.
  src.cursor_ = seed % static_cast<uint64_t>(src.data_.size());
  return src;
}

payload payload_source::next() {
  payload p;
  if (!random_.empty()) {
    p.inputs = random_[cursor_++ % random_.size()];
    return p;
  }
  const auto i = static_cast<int64_t>(cursor_++ % static_cast<uint64_t>(data_.size()));
  p.inputs.push_back(data_.records.slice_rows(i, i + 1).reshaped(row_dims_));
  if (!data_.labels.empty())
    p.label = data_.labels[static_cast<size_t>(i)];
  return p;
}

std::optional<int64_t> predicted_class(const tensor& logits) {
  if (!logits.defined() || logits.type() != dtype::f32 || logits.numel() == 0)
    return std::nullopt;
  const int64_t row = logits.rank() >= 2 ? logits.numel() / logits.dim(0) : logits.numel();
  const float* v = logits.data<float>();
  return std::max_element(v, v + row) - v;
}

} // namespace troupe::load
