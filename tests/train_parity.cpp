// train_parity: trains with mtlite's Trainer on batches written by
// tests/python/test_train_parity.py, so that the script can compare the weights with PyTorch's.
//
//   train_parity SPEC.json INIT.safetensors BATCHES.json OUT.safetensors LR THREADS [OPTIMIZER]
//
// SPEC.json is a spec in the JSON form (format/spec_json.hpp); INIT.safetensors holds every
// parameter under its mtlite name (the starting point of both sides). BATCHES.json:
//   {"batches": [{"rows": N,
//                 "dense":   [N x (dense features) floats, row-major],
//                 "ids":     [N x (categorical features) ids as decimal strings],
//                 "bags":    [{"ids": [decimal strings], "offsets": [N + 1 integers]}, ...],
//                 "labels":  [N x tasks floats, row-major],
//                 "mask":    [N x tasks 0/1] (optional: all labelled),
//                 "weights": [N floats] (optional: all 1)}, ...]}
// The Trainer runs OPTIMIZER (sgd, the default: plain SGD; adam; adagrad; no L2, no clipping,
// fixed balancing) with learning rate LR on THREADS threads, one step per batch in file order. OUT.safetensors gets
// the final weights (F32, mtlite's parameter order); stdout gets one JSON line,
//   {"objectives": [what each step() returned], "threads": T, "lr": LR}.
// Exit status 0 on success; otherwise the error goes to stderr.
#include <mtlite/format/json.hpp>
#include <mtlite/format/spec_json.hpp>
#include <mtlite/mtlite.hpp>
#include <mtlite/offline/convert/safetensors.hpp>
#include <mtlite/offline/train/train.hpp>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
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

// One batch, owning its arrays.
struct OwnedBatch {
  std::size_t rows = 0;
  std::vector<float> dense, labels, weights;
  std::vector<std::int64_t> ids;
  std::vector<std::vector<std::int64_t>> bag_ids;
  std::vector<std::vector<std::uint32_t>> bag_offsets;
  std::vector<std::uint8_t> mask;
  std::vector<mtlite::Bag> bags;

  static OwnedBatch from_json(const Json& j) {
    OwnedBatch b;
    b.rows = j.at("rows").as_uint64();
    for (const Json& v : j.at("dense").elements()) b.dense.push_back(v.as_float());
    for (const Json& v : j.at("ids").elements()) b.ids.push_back(parse_id(v));
    for (const Json& bag : j.at("bags").elements()) {
      b.bag_ids.emplace_back();
      b.bag_offsets.emplace_back();
      for (const Json& v : bag.at("ids").elements()) b.bag_ids.back().push_back(parse_id(v));
      for (const Json& v : bag.at("offsets").elements())
        b.bag_offsets.back().push_back(static_cast<std::uint32_t>(v.as_uint64()));
    }
    for (std::size_t i = 0; i < b.bag_ids.size(); ++i)
      b.bags.push_back({b.bag_ids[i], b.bag_offsets[i]});
    for (const Json& v : j.at("labels").elements()) b.labels.push_back(v.as_float());
    if (const Json* m = j.find("mask"))
      for (const Json& v : m->elements()) b.mask.push_back(static_cast<std::uint8_t>(v.as_uint64()));
    if (const Json* w = j.find("weights"))
      for (const Json& v : w->elements()) b.weights.push_back(v.as_float());
    return b;
  }

  mtlite::Batch batch() const { return {rows, dense, ids, bags}; }
};

// The trained weights in the parameter order of the spec.
void write_safetensors(const std::string& path, const mtlite::Spec& spec, const mtlite::Weights& w) {
  std::vector<std::string> names;
  for (const mtlite::ParamInfo& p : mtlite::parameters(spec)) names.push_back(p.name);
  const std::vector<unsigned char> bytes = mtlite::safetensors_bytes(w, names);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw Error("cannot write " + path);
}

int run(int argc, char** argv) {
  if (argc != 7 && argc != 8) {
    std::fprintf(stderr, "usage: train_parity SPEC.json INIT.safetensors BATCHES.json OUT.safetensors LR THREADS [sgd|adam|adagrad]\n");
    return 2;
  }
  const mtlite::Spec spec = mtlite::spec_from_json(Json::parse(read_text(argv[1])));
  const mtlite::Weights init = mtlite::read_safetensors(std::string(argv[2]));
  const Json doc = Json::parse(read_text(argv[3]));
  std::vector<OwnedBatch> batches;
  for (const Json& b : doc.at("batches").elements()) batches.push_back(OwnedBatch::from_json(b));

  mtlite::train::TrainOptions o;
  const std::string optimizer = argc == 8 ? argv[7] : "sgd";
  if (optimizer == "sgd") o.optimizer = mtlite::train::OptimizerKind::sgd;
  else if (optimizer == "adam") o.optimizer = mtlite::train::OptimizerKind::adam;
  else if (optimizer == "adagrad") o.optimizer = mtlite::train::OptimizerKind::adagrad;
  else throw Error("unknown optimizer '" + optimizer + "'");
  o.lr = std::strtof(argv[5], nullptr);
  o.threads = static_cast<std::size_t>(std::strtoul(argv[6], nullptr, 10));
  o.balancing.method = mtlite::train::BalanceMethod::fixed;
  mtlite::train::Trainer trainer(spec, o);
  trainer.set_weights(init);

  std::string objectives;
  for (const OwnedBatch& b : batches) {
    const double obj = trainer.step(b.batch(), {b.labels.data(), b.labels.size()}, {b.mask.data(), b.mask.size()},
                                    {b.weights.data(), b.weights.size()});
    objectives += (objectives.empty() ? "" : ",") + Json(obj).dump();
  }
  write_safetensors(argv[4], spec, trainer.weights());
  std::printf("{\"objectives\":[%s],\"threads\":%zu,\"lr\":%s,\"optimizer\":\"%s\"}\n", objectives.c_str(),
              o.threads, Json(static_cast<double>(o.lr)).dump().c_str(), optimizer.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return mtlite_test::driver_main("train_parity", run, argc, argv); }
