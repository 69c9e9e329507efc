// torch_parity: scores inputs with mtlite from a model exported by tools/python/mtlite_torch.py,
// so that tests/python/test_torch_parity.py can compare mtlite with PyTorch.
//
//   torch_parity MODEL.mtl INPUTS.json OUTPUTS.json
//
// MODEL.mtl is what `mtlite convert WEIGHTS.safetensors --config MODEL.json` made of the export,
// loaded the way an app loads it (memory-mapped, self-test run). INPUTS.json:
//   {"rows": N,
//    "dense": [N x (dense features) floats, row-major],
//    "ids":   [N x (categorical features) ids, row-major, as decimal strings (64-bit ids do not
//              fit a JSON number)],
//    "bags":  [{"ids": [decimal strings], "offsets": [N + 1 integers]}, one per multi-hot feature],
//    "strings": [texts whose mtlite::hash_string the caller wants to cross-check]}
// OUTPUTS.json:
//   {"output_names": [...], "outputs": {"<name>": [N floats]},
//    "string_hashes": [hash_string of each input string, as decimal strings]}
// Exit status 0 on success; otherwise the error goes to stderr.
#include <mtlite/format/json.hpp>
#include <mtlite/mtlite.hpp>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "support.hpp"

namespace {

using mtlite::Error;
using mtlite::Json;
using mtlite_test::parse_id;
using mtlite_test::read_text;

// ---- inputs and outputs ---------------------------------------------------------------------

int run(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: torch_parity MODEL.mtl INPUTS.json OUTPUTS.json\n");
    return 2;
  }
  const mtlite::Model model = mtlite::Model::load(argv[1]);
  model.verify();

  const Json in = Json::parse(read_text(argv[2]));
  const std::size_t rows = in.at("rows").as_uint64();
  std::vector<float> dense;
  for (const Json& v : in.at("dense").elements()) dense.push_back(v.as_float());
  std::vector<std::int64_t> ids;
  for (const Json& v : in.at("ids").elements()) ids.push_back(parse_id(v));
  std::vector<std::vector<std::int64_t>> bag_ids;
  std::vector<std::vector<std::uint32_t>> bag_offsets;
  for (const Json& b : in.at("bags").elements()) {
    bag_ids.emplace_back();
    bag_offsets.emplace_back();
    for (const Json& v : b.at("ids").elements()) bag_ids.back().push_back(parse_id(v));
    for (const Json& v : b.at("offsets").elements())
      bag_offsets.back().push_back(static_cast<std::uint32_t>(v.as_uint64()));
  }
  std::vector<mtlite::Bag> bags;
  for (std::size_t b = 0; b < bag_ids.size(); ++b)
    bags.push_back({bag_ids[b], bag_offsets[b]});
  const mtlite::Batch batch{rows, dense, ids, bags};
  mtlite::Session session(model, rows ? rows : 1);
  if (mtlite::Status st = session.predict(batch); !st) throw Error(std::string("predict: ") + st.message());

  // Written as text: building it from Json values trips GCC 12's -Wmaybe-uninitialized on
  // std::variant moves at -O3.
  auto quoted = [](const std::string& s) { return Json(s).dump(); };
  std::string names, outputs;
  for (std::size_t o = 0; o < model.num_outputs(); ++o) {
    names += (o ? "," : "") + quoted(model.output_name(o));
    outputs += (o ? "," : "") + quoted(model.output_name(o)) + ":[";
    for (std::size_t r = 0; r < rows; ++r)
      outputs += (r ? "," : "") + Json(static_cast<double>(session.score(o, r))).dump();
    outputs += "]";
  }
  std::string hashes;
  if (const Json* strings = in.find("strings"))
    for (const Json& s : strings->elements())
      hashes += (hashes.empty() ? "\"" : ",\"") + std::to_string(mtlite::hash_string(s.as_string())) + "\"";
  const std::string out = "{\"output_names\":[" + names + "],\"outputs\":{" + outputs +
                          "},\"string_hashes\":[" + hashes + "]}";
  std::ofstream file(argv[3], std::ios::binary);
  file << out << "\n";
  if (!file) throw Error(std::string("cannot write ") + argv[3]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return mtlite_test::driver_main("torch_parity", run, argc, argv); }
