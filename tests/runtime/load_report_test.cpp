// Tests for the load report writers (JSON, CSV, HTML) and the IDX dataset reader.
#include <doctest/doctest.h>

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <simdjson.h>

#include "runtime/load/dataset.hpp"
#include "runtime/load/report.hpp"

using namespace troupe;
using namespace troupe::load;

namespace {

run_result synthetic() {
  run_result r;
  r.scenario = "synthetic \"q\"";
  r.transport = "in_process";
  r.target = "repo";
  r.duration_s = 4;
  for (int k = 0; k < 2; ++k) {
    phase_result p;
    p.name = k == 0 ? "warm-up" : "steady, poisson";
    p.arrival = "poisson 100/s";
    p.start_s = 2.0 * k;
    p.end_s = 2.0 * k + 2;
    p.last_reply_s = p.end_s;
    p.slo_ms = 5;
    p.sent = 200;
    p.ok = 190;
    p.errors["timeout"] = 6;
    p.errors["http_503"] = 4;
    for (int i = 1; i <= 190; ++i) {
      p.latency.record(i * 50); // 50 µs .. 9.5 ms
      p.within_slo += i * 50 <= 5000 ? 1 : 0;
    }
    p.labelled = 190;
    p.correct = 171;
    p.lag_max_ms = 0.5;
    r.phases.push_back(p);
  }
  for (int s = 0; s < 4; ++s)
    r.series.push_back({s, static_cast<size_t>(s / 2), 100, 95, 5, 2.5 + s, 9.0 + s, 0.1});
  return r;
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

} // namespace

TEST_CASE("JSON report parses back with every phase figure and the per-second series") {
  const run_result r = synthetic();
  simdjson::dom::parser parser;
  const std::string text = to_json(r);
  simdjson::dom::element doc;
  REQUIRE(parser.parse(text).get(doc) == simdjson::SUCCESS);
  CHECK(std::string_view(doc["scenario"]) == "synthetic \"q\"");
  CHECK(double(doc["duration_s"]) == 4.0);
  simdjson::dom::array phases = doc["phases"];
  REQUIRE(phases.size() == 2);
  auto p = phases.at(1);
  CHECK(std::string_view(p["name"]) == "steady, poisson");
  CHECK(uint64_t(p["sent"]) == 200);
  CHECK(uint64_t(p["ok"]) == 190);
  CHECK(uint64_t(p["errors"]["timeout"]) == 6);
  CHECK(uint64_t(p["errors"]["http_503"]) == 4);
  CHECK(uint64_t(p["error_count"]) == 10);
  CHECK(double(p["throughput"]) == doctest::Approx(95.0));
  CHECK(double(p["goodput"]) == doctest::Approx(50.0)); // 100 of 190 within 5 ms, over 2 s
  // The 95th of 190 values is 4750 µs, reported as its bucket's top (4736..4767 µs).
  CHECK(double(p["latency_ms"]["p50"]) == doctest::Approx(4.767));
  CHECK(double(p["latency_ms"]["max"]) == doctest::Approx(9.5));
  CHECK(double(p["accuracy"]) == doctest::Approx(0.9));
  uint64_t histogram_total = 0;
  for (auto bucket : simdjson::dom::array(p["histogram"]))
    histogram_total += uint64_t(simdjson::dom::array(bucket).at(2));
  CHECK(histogram_total == 190);
  simdjson::dom::array series = doc["series"];
  REQUIRE(series.size() == 4);
  CHECK(int64_t(series.at(3)["second"]) == 3);
  CHECK(uint64_t(series.at(3)["phase"]) == 1);
  CHECK(double(series.at(3)["p99_ms"]) == 12.0);
}

TEST_CASE("CSV report has a header and one row per second with quoted phase names") {
  std::istringstream in(to_csv(synthetic()));
  std::string line;
  std::getline(in, line);
  CHECK(line == "second,phase,sent,ok,errors,p50_ms,p99_ms,lag_max_ms");
  std::vector<std::string> rows;
  while (std::getline(in, line))
    rows.push_back(line);
  REQUIRE(rows.size() == 4);
  CHECK(rows[0] == "0,\"warm-up\",100,95,5,2.500,9.000,0.100");
  CHECK(rows[3] == "3,\"steady, poisson\",100,95,5,5.500,12.000,0.100");
}

TEST_CASE("HTML report is self-contained and draws every chart with phase boundaries") {
  const std::string html = to_html(synthetic());
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("http://") == html.find("http://www.w3.org/2000/svg")); // only the SVG namespace
  CHECK(html.find("<link") == std::string::npos);
  CHECK(count_of(html, "<svg ") == 4);
  for (const char* id : {"id=\"throughput\"", "id=\"latency\"", "id=\"errors\"", "id=\"latency-histogram\""})
    CHECK(html.find(id) != std::string::npos);
  // sent/s + ok/s, p50 + p99, errors/s.
  CHECK(count_of(html, "<polyline") == 5);
  CHECK(count_of(html, "data-series=\"p99\"") == 1);
  // Two phases, marked on each of the three time charts.
  CHECK(count_of(html, "class=\"phase-boundary\"") == 6);
  CHECK(count_of(html, "class=\"bar\"") > 5);
  CHECK(html.find("steady, poisson") != std::string::npos);
  CHECK(html.find("synthetic &quot;q&quot;") != std::string::npos);
  // Each polyline has one point per second.
  const auto at = html.find("data-series=\"ok/s\"");
  const auto pts = html.find("points=\"", at);
  const auto end = html.find('"', pts + 8);
  CHECK(count_of(html.substr(pts, end - pts), ",") == 4);
}

TEST_CASE("summary table and live line show the figures people read") {
  const run_result r = synthetic();
  const std::string table = summary_table(r);
  CHECK(table.find("warm-up") != std::string::npos);
  CHECK(table.find("error timeout: 6") != std::string::npos);
  CHECK(table.find("90.00%") != std::string::npos);
  CHECK(live_line(r.series[2], r).find("steady, poisson") != std::string::npos);
  CHECK(live_line(r.series[2], r).find("ok     95") != std::string::npos);
}

TEST_CASE("read_idx reads gzip and raw IDX files and rejects bad ones") {
  const auto dir = std::filesystem::temp_directory_path() / "troupe_idx_test";
  std::filesystem::create_directories(dir);
  std::string idx{'\0', '\0', '\x08', '\x03', 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3};
  for (int i = 0; i < 12; ++i)
    idx.push_back(static_cast<char>(i * 20));
  { std::ofstream(dir / "raw.idx", std::ios::binary) << idx; }
  gzFile gz = gzopen((dir / "x.idx.gz").c_str(), "wb");
  gzwrite(gz, idx.data(), static_cast<unsigned>(idx.size()));
  gzclose(gz);
  for (const char* name : {"raw.idx", "x.idx.gz"}) {
    auto t = read_idx(dir / name);
    REQUIRE_MESSAGE(t, t.error().to_string());
    CHECK(t->dims() == shape{2, 2, 3});
    CHECK(t->type() == dtype::u8);
    CHECK(t->data<uint8_t>()[11] == 220);
  }
  { std::ofstream(dir / "short.idx", std::ios::binary) << idx.substr(0, idx.size() - 1); }
  auto bad = read_idx(dir / "short.idx");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message().find("IDX header says 12 bytes of data, file has 11") != std::string::npos);
  CHECK_FALSE(read_idx(dir / "missing.idx"));

  // A dataset payload normalizes bytes: (x / 255 - mean) / std.
  payload_spec spec;
  spec.kind = payload_kind::fashion_mnist;
  spec.images = (dir / "x.idx.gz").string();
  spec.mean = 0.5;
  spec.stddev = 0.5;
  auto d = load_dataset(spec);
  REQUIRE(d);
  CHECK(d->size() == 2);
  CHECK(d->records.data<float>()[0] == doctest::Approx(-1.0));
  CHECK(d->records.data<float>()[11] == doctest::Approx((220 / 255.0 - 0.5) / 0.5));
  std::filesystem::remove_all(dir);
}

TEST_CASE("Fashion-MNIST test set loads with labels, shaped for the seed CNN's input") {
  const std::string images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  if (!std::filesystem::exists(images))
    return; // the dataset is a system package; absent means nothing to check here
  payload_spec spec;
  spec.kind = payload_kind::fashion_mnist;
  spec.images = images;
  spec.labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
  auto src = payload_source::make("seed_cnn", {{"input", dtype::f32, {-1, 1, 28, 28}}}, spec, 0);
  REQUIRE_MESSAGE(src, src.error().to_string());
  CHECK(src->records() == 10000);
  CHECK(src->has_labels());
  auto p = src->next();
  REQUIRE(p.inputs.size() == 1);
  CHECK(p.inputs[0].dims() == shape{1, 1, 28, 28});
  REQUIRE(p.label);
  CHECK(*p.label == 9); // the first test image is an ankle boot
  auto wrong = payload_source::make("m", {{"x", dtype::f32, {-1, 10}}}, spec, 0);
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().message().find("wants 10 values per request") != std::string::npos);
}
