// npy: version 1-3 headers, the dtypes troupe knows, strict size checks.
#include "runtime/npy.hpp"

#include <cstring>
#include <fstream>
#include <sstream>

namespace troupe {
namespace {

struct descr_row {
  const char* descr;
  dtype type;
};
constexpr descr_row descrs[] = {
  {"<f4", dtype::f32}, {"<f8", dtype::f64}, {"<f2", dtype::f16}, {"<i8", dtype::i64},
  {"<i4", dtype::i32}, {"<i2", dtype::i16}, {"|i1", dtype::i8},  {"<u8", dtype::u64},
  {"<u4", dtype::u32}, {"<u2", dtype::u16}, {"|u1", dtype::u8},  {"|b1", dtype::boolean},
};

/// The value text of `'key': value` in the header dict.
std::string dict_value(const std::string& header, const std::string& key) {
  auto pos = header.find("'" + key + "'");
  if (pos == std::string::npos)
    return {};
  pos = header.find(':', pos);
  if (pos == std::string::npos)
    return {};
  ++pos;
  while (pos < header.size() && header[pos] == ' ')
    ++pos;
  if (pos < header.size() && header[pos] == '(') {
    auto end = header.find(')', pos);
    return end == std::string::npos ? std::string{} : header.substr(pos, end - pos + 1);
  }
  auto end = header.find_first_of(",}", pos);
  return header.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
}

} // namespace

expected<tensor> parse_npy(const std::string& bytes, const std::string& source) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    return make_error(errc::parse_error, "{}: not a .npy file", source);
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12)
      return make_error(errc::parse_error, "{}: truncated .npy header", source);
    uint32_t len = 0;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    header_start = 12;
  } else {
    return make_error(errc::parse_error, "{}: unsupported .npy version {}", source, major);
  }
  if (header_start + header_len > bytes.size())
    return make_error(errc::parse_error, "{}: truncated .npy header", source);
  const std::string header = bytes.substr(header_start, header_len);

  std::string descr = dict_value(header, "descr");
  if (descr.size() >= 2)
    descr = descr.substr(1, descr.size() - 2); // strip quotes
  if (descr == "<b1")
    descr = "|b1";
  dtype type = dtype::undefined;
  for (const auto& row : descrs)
    if (descr == row.descr)
      type = row.type;
  if (type == dtype::undefined)
    return make_error(errc::unsupported, "{}: unsupported .npy dtype '{}'", source, descr);
  if (dict_value(header, "fortran_order").find("True") != std::string::npos)
    return make_error(errc::unsupported, "{}: Fortran-order arrays are not supported", source);

  shape dims;
  std::string shape_text = dict_value(header, "shape");
  if (shape_text.size() < 2 || shape_text.front() != '(')
    return make_error(errc::parse_error, "{}: .npy header has no shape", source);
  std::istringstream in(shape_text.substr(1, shape_text.size() - 2));
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.find_first_not_of(' ') == std::string::npos)
      continue;
    try {
      size_t used = 0;
      long long d = std::stoll(item, &used);
      if (d < 0)
        return make_error(errc::parse_error, "{}: negative dimension in .npy shape", source);
      dims.push_back(d);
    } catch (const std::exception&) {
      return make_error(errc::parse_error, "{}: bad .npy shape '{}'", source, shape_text);
    }
  }
  auto need = checked_bytes(dims, size_of(type));
  if (!need)
    return need.error().with_context(source);
  const size_t data_start = header_start + header_len;
  if (bytes.size() - data_start != static_cast<size_t>(*need))
    return make_error(errc::parse_error, "{}: .npy data has {} bytes, shape {} needs {}", source,
                      bytes.size() - data_start, to_string(dims), *need);
  tensor t = tensor::empty(type, dims);
  if (*need)
    std::memcpy(t.raw(), bytes.data() + data_start, static_cast<size_t>(*need));
  return t;
}

expected<tensor> load_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return make_error(errc::not_found, "{}: cannot open file", path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_npy(bytes, path);
}

status save_npy(const std::string& path, const tensor& t) {
  const char* descr = nullptr;
  for (const auto& row : descrs)
    if (row.type == t.type())
      descr = row.descr;
  if (!descr)
    return make_error(errc::unsupported, "{}: cannot write dtype {} to .npy", path, to_string(t.type()));
  std::string shape_text = "(";
  for (auto d : t.dims())
    shape_text += std::to_string(d) + ",";
  if (t.rank() > 1)
    shape_text.pop_back();
  shape_text += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " +
                       shape_text + ", }";
  // Pad so the data starts at a multiple of 64 bytes, ending the header with a newline.
  while ((10 + header.size() + 1) % 64 != 0)
    header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out)
    return make_error(errc::not_found, "{}: cannot create file", path);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.put(static_cast<char>(len & 0xff));
  out.put(static_cast<char>(len >> 8));
  out << header;
  out.write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
  if (!out)
    return make_error(errc::internal, "{}: write failed", path);
  return status::ok();
}

} // namespace troupe
