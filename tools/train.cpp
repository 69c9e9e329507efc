// mtlite train --config model.json --train TRAIN [--valid VALID] --out MODEL.mtl [options]
//
// Fits the data binding on TRAIN (vocabularies, normalisation statistics), trains epoch by epoch
// on shuffled mini-batches, scores VALID after every epoch with the runtime itself, keeps the
// best model by the main task's validation metric (early stopping), and after every epoch
// rewrites MODEL.mtl atomically. MODEL.mtl is a float model file that every other command reads
// (convert, eval, predict, inspect, the library); its "train.*" tensors and "training" metadata
// make it a checkpoint that --resume continues bit for bit.
#include <mtlite/offline/train/train.hpp>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "commands.hpp"
#include "model_io.hpp"
#include "output.hpp"
#include "plot.hpp"
#include "progress.hpp"

namespace {

namespace tr = mtlite::train;
using mtlite::Json;

// What a run is: everything that decides its result, stored in the checkpoint for --resume.
struct RunConfig {
  tr::TrainOptions options;
  std::size_t epochs = 10;
  std::size_t batch_size = 256;
  std::size_t patience = 3;
  std::string metric;  // output name; empty = the first main task

  Json to_json() const {
    const tr::BalancingOptions& b = options.balancing;
    return Json::object()
        .set("optimizer", tr::to_string(options.optimizer))
        .set("lr", Json::from_float(options.lr))
        .set("l2", Json::from_float(options.l2))
        .set("clip_norm", Json::from_float(options.clip_norm))
        .set("balancing", Json::object()
                              .set("method", tr::to_string(b.method))
                              .set("r", Json::from_float(b.r))
                              .set("beta", Json::from_float(b.beta))
                              .set("alpha", Json::from_float(b.alpha))
                              .set("lr", Json::from_float(b.lr)))
        .set("affinity_every", options.affinity_every)
        .set("seed", options.seed)
        .set("epochs", epochs)
        .set("batch_size", batch_size)
        .set("patience", patience)
        .set("metric", metric);
  }
};

tr::OptimizerKind optimizer_of(const std::string& s) {
  if (s == "adam") return tr::OptimizerKind::adam;
  if (s == "adagrad") return tr::OptimizerKind::adagrad;
  if (s == "sgd") return tr::OptimizerKind::sgd;
  throw mtlite::Error("optimizer: '" + s + "' is not adam, adagrad or sgd");
}

tr::BalanceMethod balance_of(const std::string& s) {
  if (s == "fixed") return tr::BalanceMethod::fixed;
  if (s == "uncertainty") return tr::BalanceMethod::uncertainty;
  if (s == "gradnorm") return tr::BalanceMethod::gradnorm;
  if (s == "metabalance") return tr::BalanceMethod::metabalance;
  throw mtlite::Error("balancing: '" + s + "' is not fixed, uncertainty, gradnorm or metabalance");
}

// A JSON number that must be a whole number in [lo, hi].
std::size_t whole(const Json& v, const std::string& where, std::uint64_t lo, std::uint64_t hi) {
  const std::uint64_t n = v.as_uint64();
  if (n < lo || n > hi)
    throw mtlite::Error(where + ": must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<std::size_t>(n);
}

// model.json's "training" block (the same keys to_json() writes); unknown keys are errors.
void apply_json(RunConfig& c, const Json& j, const std::string& where) {
  if (!j.is_object()) throw mtlite::Error(where + ": must be an object");
  for (const auto& [key, v] : j.items()) {
    const std::string at = where + "." + key;
    try {
      if (key == "optimizer") c.options.optimizer = optimizer_of(v.as_string());
      else if (key == "lr") c.options.lr = v.as_float();
      else if (key == "l2") c.options.l2 = v.as_float();
      else if (key == "clip_norm") c.options.clip_norm = v.as_float();
      else if (key == "affinity_every") c.options.affinity_every = whole(v, at, 0, 1000000000);
      else if (key == "seed") c.options.seed = whole(v, at, 0, 1ull << 53);
      else if (key == "epochs") c.epochs = whole(v, at, 1, 1000000);
      else if (key == "batch_size") c.batch_size = whole(v, at, 1, 1 << 20);
      else if (key == "patience") c.patience = whole(v, at, 0, 1000000);
      else if (key == "metric") c.metric = v.as_string();
      else if (key == "balancing") {
        if (!v.is_object()) throw mtlite::Error("must be an object");
        for (const auto& [bkey, bv] : v.items()) {
          tr::BalancingOptions& b = c.options.balancing;
          if (bkey == "method") b.method = balance_of(bv.as_string());
          else if (bkey == "r") b.r = bv.as_float();
          else if (bkey == "beta") b.beta = bv.as_float();
          else if (bkey == "alpha") b.alpha = bv.as_float();
          else if (bkey == "lr") b.lr = bv.as_float();
          else throw mtlite::Error("unknown key '" + bkey + "' (method, r, beta, alpha, lr)");
        }
      } else {
        throw mtlite::Error("unknown key (optimizer, lr, l2, clip_norm, balancing, affinity_every, seed, epochs, "
                            "batch_size, patience, metric)");
      }
    } catch (const mtlite::Error& e) {
      throw mtlite::Error(at + ": " + e.what());
    }
  }
}

void apply_args(RunConfig& c, const cli::Args& a) {
  tr::TrainOptions& o = c.options;
  if (a.has("optimizer")) o.optimizer = optimizer_of(a.get("optimizer"));
  o.lr = static_cast<float>(a.real("lr", o.lr, 1e-12, 1000000));
  o.l2 = static_cast<float>(a.real("l2", o.l2, 0, 1000000));
  o.clip_norm = static_cast<float>(a.real("clip-norm", o.clip_norm, 0, 1e12));
  if (a.has("balance")) o.balancing.method = balance_of(a.get("balance"));
  o.balancing.r = static_cast<float>(a.real("mb-r", o.balancing.r, 0, 1));
  o.balancing.beta = static_cast<float>(a.real("mb-beta", o.balancing.beta, 0, 0.999999));
  if (a.has("affinity")) o.affinity_every = static_cast<std::size_t>(a.integer("affinity-every", 1, 1000000000));
  else if (a.has("affinity-every")) throw mtlite::Error("--affinity-every needs --affinity");
  o.seed = static_cast<std::uint64_t>(a.integer("seed", static_cast<long long>(o.seed), 0, 0x7fffffffffffffffLL));
  c.epochs = static_cast<std::size_t>(a.integer("epochs", static_cast<long long>(c.epochs), 1, 1000000));
  c.batch_size = static_cast<std::size_t>(a.integer("batch-size", static_cast<long long>(c.batch_size), 1, 1 << 20));
  c.patience = static_cast<std::size_t>(a.integer("patience", static_cast<long long>(c.patience), 0, 1000000));
  if (a.has("metric")) c.metric = a.get("metric");
}

// One epoch's record (kept in the checkpoint's "training" metadata).
struct EpochRecord {
  std::size_t epoch = 0;
  double train_loss = 0, rows_per_second = 0, seconds = 0;
  std::vector<cli::OutputMetrics> valid;
  bool best = false;

  Json to_json() const {
    Json v = Json::object();
    for (const cli::OutputMetrics& m : valid) v.set(m.output, m.to_json());
    return Json::object()
        .set("epoch", epoch)
        .set("train_loss", train_loss)
        .set("rows_per_second", rows_per_second)
        .set("seconds", seconds)
        .set("valid", std::move(v))
        .set("best", best);
  }
};

// Rows of the train set in a seeded random order per epoch: the same on every platform, and
// independent of where a resumed run picked up.
std::vector<std::size_t> epoch_order(std::size_t rows, std::uint64_t seed, std::size_t epoch) {
  std::vector<std::size_t> order(rows);
  for (std::size_t i = 0; i < rows; ++i) order[i] = i;
  mtlite::Rng rng(mtlite::mix64(seed ^ (0x5eed0000ull + epoch)));
  for (std::size_t i = rows; i > 1; --i) std::swap(order[i - 1], order[rng.next() % i]);
  return order;
}

// The checkpoint --resume names; what is wrong with it is said as --resume's.
tr::Checkpoint resume_checkpoint(const std::string& path) {
  try {
    return tr::read_checkpoint(path);
  } catch (const mtlite::Error& e) {
    throw mtlite::Error(std::string("--resume: ") + e.what());
  }
}

// The output whose metric picks the best epoch.
std::size_t metric_output(const mtlite::Spec& spec, const std::string& name) {
  if (!name.empty()) {
    for (std::size_t o = 0; o < spec.num_outputs(); ++o)
      if (spec.output_name(o) == name) return o;
    throw mtlite::Error("metric: no output named '" + name + "'");
  }
  for (std::size_t o = 0; o < spec.num_outputs(); ++o) {
    const int k = spec.output_task(o);
    if (k >= 0 && spec.tasks[static_cast<std::size_t>(k)].role == mtlite::TaskRole::main) return o;
  }
  return 0;
}

// Training loss, and each output's validation AUC (or RMSE), per epoch, from the history.
void write_plot(const std::string& path, const mtlite::Spec& spec, const tr::RunProgress& progress) {
  cli::Chart loss{"training loss (objective)", "epoch", {{"train", {}, {}}}, NAN, ""};
  cli::Chart auc{"validation AUC", "epoch", {}, NAN, ""}, rmse{"validation RMSE", "epoch", {}, NAN, ""};
  for (std::size_t o = 0; o < spec.num_outputs(); ++o) {
    (spec.output_binary(o) ? auc : rmse).series.push_back({spec.output_name(o), {}, {}});
  }
  for (const Json& e : progress.history.elements()) {
    const double epoch = e.at("epoch").as_number();
    loss.series[0].x.push_back(epoch);
    loss.series[0].y.push_back(e.at("train_loss").as_number());
    for (cli::Chart* c : {&auc, &rmse}) {
      for (cli::Series& se : c->series) {
        const Json* m = e.at("valid").find(se.name);
        const Json* v = m ? m->find(c == &auc ? "auc" : "rmse") : nullptr;
        se.x.push_back(epoch);
        se.y.push_back(v ? v->as_number() : NAN);
      }
    }
  }
  std::vector<cli::Chart> charts{loss};
  for (cli::Chart* c : {&auc, &rmse})
    if (!c->series.empty()) charts.push_back(*c);
  for (cli::Chart& c : charts) {
    if (progress.best_epoch == 0) continue;
    c.marked_x = static_cast<double>(progress.best_epoch);
    c.marked_label = "best";
  }
  cli::AtomicOutput out(path);
  out.write(cli::svg(charts));
  out.commit();
}

void print_metrics(const std::vector<cli::OutputMetrics>& ms) {
  for (const cli::OutputMetrics& m : ms) std::printf("    %-18s %s\n", m.output.c_str(), m.text().c_str());
}

Json gate_json(const tr::GateReport& r) {
  Json gates = Json::array();
  for (const tr::GateStats& g : r.gates) {
    Json weights = Json::object();
    for (std::size_t e = 0; e < g.experts.size(); ++e) weights.set(g.experts[e], g.mean_weight[e]);
    gates.push(Json::object()
                   .set("gate", g.gate)
                   .set("mean_weight", std::move(weights))
                   .set("mean_entropy", g.mean_entropy)
                   .set("usage_entropy", g.usage_entropy)
                   .set("collapsed", g.collapsed));
  }
  Json dead = Json::array();
  for (const std::string& e : r.dead_experts) dead.push(e);
  return Json::object().set("gates", std::move(gates)).set("dead_experts", std::move(dead));
}

// "gate1" -> "gate1 (never_married)": MMoE's gate k and PLE's "<level>.task<k>.gate" serve task k.
std::string gate_label(const mtlite::Spec& spec, const std::string& gate) {
  std::size_t at = gate.rfind("task");
  at = at == std::string::npos ? (gate.rfind("gate", 0) == 0 ? 4 : std::string::npos) : at + 4;
  if (at == std::string::npos || at >= gate.size() || !std::isdigit(static_cast<unsigned char>(gate[at]))) return gate;
  const std::size_t k = std::strtoul(gate.c_str() + at, nullptr, 10);
  return k < spec.tasks.size() ? gate + " (" + spec.tasks[k].name + ")" : gate;
}

void print_gates(const mtlite::Spec& spec, const tr::GateReport& r) {
  std::printf("\ngates on the validation rows (mean weight per expert; entropy in nats, max ln E):\n");
  for (const tr::GateStats& g : r.gates) {
    std::printf("  %-24s", gate_label(spec, g.gate).c_str());
    for (std::size_t e = 0; e < g.experts.size(); ++e) std::printf(" %s %.2f", g.experts[e].c_str(), g.mean_weight[e]);
    std::printf("  | entropy %.2f, usage %.2f of %.2f\n", g.mean_entropy, g.usage_entropy,
                std::log(static_cast<double>(g.experts.size())));
    if (g.collapsed) std::printf("  warning: gate %s has collapsed onto one expert (mean weight > 0.9)\n", g.gate.c_str());
  }
  for (const std::string& e : r.dead_experts)
    std::printf("  warning: no task uses expert %s (every gate gives it under 1/(10 E))\n", e.c_str());
}

Json affinity_json(const tr::Trainer& t) {
  const tr::AffinityMatrix& a = t.affinity();
  const std::vector<double> z = a.means();
  Json matrix = Json::array();
  for (std::size_t i = 0; i < a.tasks; ++i) {
    Json row = Json::array();
    for (std::size_t j = 0; j < a.tasks; ++j) row.push(z[i * a.tasks + j]);
    matrix.push(std::move(row));
  }
  Json groupings = Json::array();
  for (const tr::Grouping& g : t.task_groupings()) {
    Json groups = Json::array();
    for (const auto& group : g.groups) {
      Json names = Json::array();
      for (std::size_t k : group) names.push(t.spec().tasks[k].name);
      groups.push(std::move(names));
    }
    groupings.push(Json::object().set("groups", std::move(groups)).set("score", g.score));
  }
  return Json::object().set("matrix", std::move(matrix)).set("groupings", std::move(groupings));
}

void print_affinity(const tr::Trainer& t) {
  const tr::AffinityMatrix& a = t.affinity();
  const std::vector<double> z = a.means();
  const std::vector<mtlite::Task>& tasks = t.spec().tasks;
  std::printf("\ntask affinity Z(i -> j) (row i's step lowers j's loss by this fraction; TAG):\n  %-14s", "");
  for (const mtlite::Task& task : tasks) std::printf(" %12.12s", task.name.c_str());
  std::printf("\n");
  for (std::size_t i = 0; i < a.tasks; ++i) {
    std::printf("  %-14.14s", tasks[i].name.c_str());
    for (std::size_t j = 0; j < a.tasks; ++j) std::printf(" %+12.5f", z[i * a.tasks + j]);
    std::printf("\n");
  }
  std::printf("best grouping into g groups:\n");
  for (const tr::Grouping& g : t.task_groupings()) {
    std::printf("  %zu: ", g.groups.size());
    for (const auto& group : g.groups) {
      std::printf("{");
      for (std::size_t i = 0; i < group.size(); ++i) std::printf("%s%s", i ? ", " : "", tasks[group[i]].name.c_str());
      std::printf("} ");
    }
    std::printf(" score %+.5f\n", g.score);
  }
}

// The options that belong to a new run: a resumed one continues as its checkpoint was set up.
constexpr const char* kNewRuns = "new runs";

// --help shows the defaults a run starts from.
const Json kDefaults = RunConfig{}.to_json();

const cli::Command kCommand{
    "usage: mtlite train --config model.json --train TRAIN [--valid VALID] --out MODEL.mtl [options]\n"
    "       mtlite train --resume MODEL.mtl --train TRAIN [--valid VALID] [--epochs N] [--threads N]\n"
    "\n"
    "Trains the model model.json describes on TRAIN (CSV/TSV, plain or gzip, read with model.json's\n"
    "\"data\" bindings), scores VALID after every epoch and keeps the best epoch by the main task's\n"
    "validation metric (AUC, or RMSE for regression). MODEL.mtl is rewritten atomically after every\n"
    "epoch: the best weights as a float model file, plus the state --resume needs.\n"
    "A training option not given comes from model.json's \"training\" block, else the default shown.\n",
    {
        {"config", "model.json", "the model: architecture, features, tasks, \"data\" bindings, \"training\" block", "",
         kNewRuns},
        {"train", "TRAIN", "the rows to train on"},
        {"valid", "VALID", "the rows scored after every epoch"},
        {"out", "MODEL.mtl", "the file written after every epoch (with --resume: the resumed file unless given)"},
        {"epochs", "N", "epochs in all", cli::shown(kDefaults.at("epochs"))},
        {"batch-size", "N", "rows per step", cli::shown(kDefaults.at("batch_size")), kNewRuns},
        {"optimizer", "NAME", "adam, adagrad or sgd", cli::shown(kDefaults.at("optimizer")), kNewRuns},
        {"lr", "X", "learning rate", cli::shown(kDefaults.at("lr")), kNewRuns},
        {"l2", "X", "L2 regularisation added to the gradient", cli::shown(kDefaults.at("l2")), kNewRuns},
        {"clip-norm", "X", "clip the global gradient norm to X; 0: off", cli::shown(kDefaults.at("clip_norm")),
         kNewRuns},
        {"balance", "METHOD", "fixed (the tasks' loss_weight), uncertainty, gradnorm or metabalance",
         cli::shown(kDefaults.at("balancing").at("method")), kNewRuns},
        {"mb-r", "R", "MetaBalance relax factor r in [0, 1]", cli::shown(kDefaults.at("balancing").at("r")), kNewRuns},
        {"mb-beta", "B", "MetaBalance moving-average beta in [0, 1)", cli::shown(kDefaults.at("balancing").at("beta")),
         kNewRuns},
        {"patience", "N", "stop after N epochs without a better validation metric; 0: never",
         cli::shown(kDefaults.at("patience"))},
        {"metric", "OUTPUT", "the output whose validation metric selects the best epoch; without it, the first main task",
         "", kNewRuns},
        {"task", "NAME", "train model.json's task NAME alone (as a main task, its labels alone read): a single-task "
         "baseline of the same network", "", kNewRuns},
        {"seed", "S", "initial weights and shuffling", cli::shown(kDefaults.at("seed")), kNewRuns},
        {"threads", "N", "worker threads; a seed and thread count give one result", cli::shown(tr::TrainOptions{}.threads)},
        {"affinity", nullptr, "measure inter-task affinity (TAG) and print the best task groupings", "", kNewRuns},
        {"affinity-every", "N", "measure it every N steps", "10", kNewRuns},
        cli::kMaxRows,
        cli::kSkipBadRows,
        {"resume", "MODEL.mtl", "continue the run that wrote MODEL.mtl (its options and data binding)"},
        {"plot", "FILE.svg", "draw the training loss and the validation metrics per epoch (rewritten after every epoch)"},
        {"json", nullptr, "print one JSON object at the end instead of text"},
    }};

// A run: fresh from model.json, or continued from a checkpoint.
struct Run {
  mtlite::Spec spec;
  mtlite::data::DataBinding binding;
  RunConfig config;
  tr::RunProgress progress;
  std::optional<tr::Checkpoint> checkpoint;
  mtlite::data::ReadReport fitted;  // a new run's binding fitted on TRAIN
};

Run resume_run(const cli::Args& args) {
  if (const cli::Option* o = args.outside("--resume"))
    throw mtlite::Error(std::string("--") + o->name + " cannot change on --resume: the checkpoint's run continues as it was set up");
  Run run;
  run.checkpoint = resume_checkpoint(args.get("resume"));
  cli::warn_huge_weights(run.checkpoint->current, "--resume " + args.get("resume"));
  run.spec = run.checkpoint->spec;
  run.binding = mtlite::data::DataBinding::from_json(run.checkpoint->data);
  apply_json(run.config, run.checkpoint->config, args.get("resume") + ": training.config");
  run.progress = run.checkpoint->progress;
  run.config.epochs = static_cast<std::size_t>(args.integer("epochs", static_cast<long long>(run.config.epochs), 1, 1000000));
  run.config.patience = static_cast<std::size_t>(args.integer("patience", static_cast<long long>(run.config.patience), 0, 1000000));
  return run;
}

// model.json with one task left, as a main task: --task's single-task baseline.
Json with_one_task(Json model_json, const std::string& name) {
  if (model_json.find("esmm")) throw mtlite::Error("--task: an esmm model needs both its tasks");
  Json* tasks = model_json.find("tasks");
  if (!tasks || !tasks->is_array()) return model_json;  // the spec reader says what is wrong
  Json kept = Json::array();
  for (const Json& t : tasks->elements())
    if (const Json* n = t.find("name"); n && n->is_string() && n->as_string() == name) kept.push(Json(t).set("role", "main"));
  if (kept.size() == 0) throw mtlite::Error("--task: model.json has no task '" + name + "'");
  *tasks = std::move(kept);
  if (Json* training = model_json.find("training"); training && training->find("metric"))
    training->set("metric", name);
  return model_json;
}

Run new_run(const cli::Args& args, const mtlite::data::ReadOptions& read, bool json) {
  Run run;
  Json model_json = cli::read_json(args.get("config"));
  try {
    if (args.has("task")) model_json = with_one_task(std::move(model_json), args.get("task"));
    run.binding = mtlite::data::DataBinding::from_json(model_json);
    run.spec = mtlite::data::DataBinding::spec_from_model_json(model_json);
    if (const Json* t = model_json.find("training")) apply_json(run.config, *t, "training");
  } catch (const mtlite::Error& e) {
    throw mtlite::Error(args.get("config") + ": " + e.what());
  }
  apply_args(run.config, args);
  if (!json) std::printf("fitting the data binding on %s ...\n", args.get("train").c_str());
  run.fitted = run.binding.fit(args.get("train"), run.spec, read);
  return run;
}

// TRAIN and VALID, read with the run's binding.
struct Data {
  mtlite::data::Dataset train;
  std::optional<mtlite::data::Dataset> valid;
};

Data load_data(const cli::Args& args, const Run& run, const mtlite::data::ReadOptions& read) {
  Data data{mtlite::data::load(args.get("train"), run.binding, run.spec, read), std::nullopt};
  if (data.train.rows == 0) throw mtlite::Error("--train: '" + args.get("train") + "' has no rows");
  if (args.has("valid")) data.valid = mtlite::data::load(args.get("valid"), run.binding, run.spec, read);
  if (data.valid && data.valid->rows == 0) throw mtlite::Error("--valid: '" + args.get("valid") + "' has no rows");
  return data;
}

// The output whose validation metric picks the best epoch, and which way is better.
struct Metric {
  std::size_t output;
  bool larger_is_better;  // AUC; RMSE is better smaller
};

// Labels that cannot measure anything, said before training: a binary task of one class (a
// "positive" spelled otherwise than in the file, say) warns; for the output that selects the
// best epoch, one class or no label in VALID is an error, since no epoch could ever be judged.
void check_labels(const cli::Args& args, const Run& run, const Data& data, const Metric& metric) {
  cli::warn_one_class(cli::label_counts(run.spec, data.train), "--train '" + args.get("train") + "'");
  if (!data.valid) return;
  const std::vector<cli::OutputMetrics> valid = cli::label_counts(run.spec, *data.valid);
  const cli::OutputMetrics& m = valid[metric.output];
  const std::string what = "--valid '" + args.get("valid") + "': output '" + m.output + "', whose " +
                           (m.binary ? "AUC" : "RMSE") + " selects the best epoch, ";
  if (m.labelled == 0)
    throw mtlite::Error(what + "has no labelled rows; select another output with --metric");
  if (!m.one_class().empty())
    throw mtlite::Error(what + "cannot be measured: " + m.one_class() +
                        "; check the task's \"positive\" values (or \"threshold\") against the labels in the file, "
                        "or select another output with --metric");
  cli::warn_one_class(valid, "--valid '" + args.get("valid") + "'");
}

void print_start(const cli::Args& args, const Run& run, const Data& data, double load_seconds) {
  const mtlite::data::Dataset& train = data.train;
  const tr::TrainOptions& o = run.config.options;
  std::printf("%s: %zu rows%s", args.get("train").c_str(), train.rows,
              train.report.skipped ? (" (" + std::to_string(train.report.skipped) + " malformed rows skipped)").c_str() : "");
  if (data.valid) std::printf("; %s: %zu rows", args.get("valid").c_str(), data.valid->rows);
  std::printf(" (read in %.1f s)\n", load_seconds);
  std::printf("%s, %zu tasks, %zu parameters; %s lr %g, batch %zu, balancing %s, %zu thread%s, seed %llu\n",
              mtlite::to_string(run.spec.architecture), run.spec.tasks.size(), mtlite::parameter_count(run.spec),
              tr::to_string(o.optimizer), static_cast<double>(o.lr), run.config.batch_size,
              tr::to_string(o.balancing.method), o.threads, o.threads == 1 ? "" : "s",
              static_cast<unsigned long long>(o.seed));
  if (run.checkpoint) std::printf("resuming after epoch %zu of %zu\n", run.progress.epochs_done, run.config.epochs);
}

// One pass over TRAIN in the epoch's seeded order, in mini-batches; the record gets the mean
// loss, the time and the speed.
void train_epoch(tr::Trainer& trainer, const mtlite::data::Dataset& train, const RunConfig& config, EpochRecord& rec,
                 const std::string& out_path, bool json) {
  const auto t0 = std::chrono::steady_clock::now();
  const mtlite::data::Dataset shuffled = train.select(epoch_order(train.rows, config.options.seed, rec.epoch));
  cli::ProgressBar bar("epoch " + std::to_string(rec.epoch) + "/" + std::to_string(config.epochs), train.rows, "rows",
                       !json);
  std::vector<mtlite::Bag> bags;
  double loss_sum = 0;
  std::size_t steps = 0;
  for (std::size_t b = 0; b < shuffled.rows; b += config.batch_size) {
    const std::size_t e = std::min(shuffled.rows, b + config.batch_size);
    const double loss = trainer.step(shuffled.batch(b, e, bags), shuffled.labels_of(b, e), shuffled.mask_of(b, e),
                                     shuffled.weights_of(b, e));
    if (!std::isfinite(loss))
      throw mtlite::Error("epoch " + std::to_string(rec.epoch) + ", rows " + std::to_string(b) + "-" +
                          std::to_string(e) + ": the loss is not finite (lower --lr, or set --clip-norm); " +
                          out_path + " keeps the last good epoch");
    loss_sum += loss;
    ++steps;
    char note[48];
    std::snprintf(note, sizeof note, "loss %.4f", loss_sum / static_cast<double>(steps));
    bar.update(e, note);
  }
  bar.clear();
  rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rec.train_loss = loss_sum / static_cast<double>(std::max<std::size_t>(1, steps));
  rec.rows_per_second = static_cast<double>(train.rows) / rec.seconds;
}

// Scores VALID with the runtime (exactly what a converted model will be scored with) and moves
// the run on: a new best epoch, or one more without improvement and perhaps the early stop.
// Without VALID every epoch is the best. True when this epoch is.
bool judge_epoch(Run& run, const Metric& metric, const tr::Trainer& trainer,
                 const std::optional<mtlite::data::Dataset>& valid, EpochRecord& rec, mtlite::Weights& best) {
  tr::RunProgress& progress = run.progress;
  bool improved = !valid;
  if (valid) {
    const mtlite::Model model(run.spec, trainer.weights());
    rec.valid = cli::evaluate(run.spec, cli::score_dataset(model, *valid), *valid, run.binding.group.has_value());
    // An undefined metric never improves on one, but the first epoch is kept until one does, so
    // that a run always ends with a model.
    const double m = rec.valid[metric.output].primary();
    improved = progress.best_epoch == 0 ||
               (!std::isnan(m) && (std::isnan(progress.best_metric) ||
                                   (metric.larger_is_better ? m > progress.best_metric : m < progress.best_metric)));
    if (improved) progress.best_metric = m;
  }
  progress.epochs_done = rec.epoch;
  if (improved) {
    best = trainer.weights();
    progress.best_epoch = rec.epoch;
    progress.bad_epochs = 0;
  } else {
    ++progress.bad_epochs;
    progress.stopped_early = run.config.patience > 0 && progress.bad_epochs >= run.config.patience;
  }
  rec.best = improved;
  progress.history.push(rec.to_json());
  return improved;
}

void print_epoch(const Run& run, const Metric& metric, const EpochRecord& rec, bool best) {
  std::printf("epoch %zu/%zu  loss %.5f  %s rows/s  %.1f s%s\n", rec.epoch, run.config.epochs, rec.train_loss,
              cli::ProgressBar::count(rec.rows_per_second).c_str(), rec.seconds, best ? "  (best)" : "");
  print_metrics(rec.valid);
  if (run.progress.stopped_early)
    std::printf("no better %s %s for %zu epochs: stopping\n", run.spec.output_name(metric.output).c_str(),
                metric.larger_is_better ? "AUC" : "RMSE", run.config.patience);
}

// Rows trained on and the seconds it took, over the epochs of this invocation.
struct Totals {
  std::size_t rows = 0;
  double seconds = 0;
};

// Epochs until the last one or the early stop; after each, MODEL.mtl (and the plot) rewritten.
Totals run_epochs(const cli::Args& args, Run& run, const Data& data, const Metric& metric, tr::Trainer& trainer,
                  mtlite::Weights& best, const std::string& out_path, bool json) {
  Totals totals;
  while (run.progress.epochs_done < run.config.epochs && !run.progress.stopped_early) {
    EpochRecord rec;
    rec.epoch = run.progress.epochs_done + 1;
    train_epoch(trainer, data.train, run.config, rec, out_path, json);
    totals.seconds += rec.seconds;
    totals.rows += data.train.rows;
    const bool improved = judge_epoch(run, metric, trainer, data.valid, rec, best);
    tr::write_checkpoint(out_path, {run.spec, run.binding.to_json(), run.config.to_json(), run.progress, best,
                                    trainer.state(), improved ? mtlite::Weights{} : trainer.weights()});
    if (args.has("plot")) write_plot(args.get("plot"), run.spec, run.progress);
    if (!json) print_epoch(run, metric, rec, improved && data.valid);
    std::fflush(stdout);
  }
  return totals;
}

Json summary(const Run& run, const Data& data, const Totals& totals, const std::string& out_path) {
  Json out = Json::object()
                 .set("out", out_path)
                 .set("bytes", cli::file_size(out_path))
                 .set("architecture", mtlite::to_string(run.spec.architecture))
                 .set("parameters", mtlite::parameter_count(run.spec))
                 .set("train_rows", data.train.rows)
                 .set("epochs_done", run.progress.epochs_done)
                 .set("best_epoch", run.progress.best_epoch)
                 .set("stopped_early", run.progress.stopped_early)
                 .set("threads", run.config.options.threads)
                 .set("config", run.config.to_json())
                 .set("history", run.progress.history);
  if (data.valid) out.set("valid_rows", data.valid->rows);
  if (totals.seconds > 0) out.set("train_rows_per_second", static_cast<double>(totals.rows) / totals.seconds);
  if (run.fitted.skipped) out.set("skipped_rows", run.fitted.skipped);
  return out;
}

// The kept model's gates on the validation rows, and the task affinity training measured.
void diagnose(tr::Trainer& trainer, const Run& run, const Data& data, const mtlite::Weights& best, Json& out,
              bool json) {
  if (data.valid) {
    trainer.set_weights(best);
    if (run.spec.gated()) {
      std::vector<mtlite::Bag> bags;
      const tr::GateReport report = trainer.gate_report(data.valid->batch(0, data.valid->rows, bags));
      out.set("gates", gate_json(report));
      if (!json) print_gates(run.spec, report);
    }
  }
  if (run.config.options.affinity_every) {
    out.set("affinity", affinity_json(trainer));
    if (!json) print_affinity(trainer);
  }
}

}  // namespace

int cmd_train(int argc, char** argv) {
  const cli::Args args(argc, argv, kCommand);
  const bool resume = args.has("resume");
  const bool usable = args.positional.empty() && args.has("train") && (resume || (args.has("config") && args.has("out")));
  if (const auto rc = args.help_or_usage(usable)) return *rc;
  const bool json = args.has("json");
  const std::string out_path = args.get("out", args.get("resume"));
  const mtlite::data::ReadOptions read = cli::read_options(args);

  const auto t_start = std::chrono::steady_clock::now();
  Run run = resume ? resume_run(args) : new_run(args, read, json);
  run.config.options.threads = static_cast<std::size_t>(args.integer("threads", 1, 256));
  run.config.options.validate();
  const Data data = load_data(args, run, read);
  const std::size_t metric_o = metric_output(run.spec, run.config.metric);
  const Metric metric{metric_o, run.spec.output_binary(metric_o)};
  check_labels(args, run, data, metric);
  const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();

  tr::Trainer trainer(run.spec, run.config.options);
  mtlite::Weights best;
  if (run.checkpoint) {
    trainer.set_weights(run.checkpoint->current);
    trainer.load_state(run.checkpoint->state);
    best = std::move(run.checkpoint->best);
  }
  if (!json) print_start(args, run, data, load_seconds);

  const Totals totals = run_epochs(args, run, data, metric, trainer, best, out_path, json);
  Json out = summary(run, data, totals, out_path);
  if (!json)
    std::printf("\nbest epoch %zu; wrote %s (%s)\n", run.progress.best_epoch, out_path.c_str(),
                cli::bytes_string(cli::file_size(out_path)).c_str());
  diagnose(trainer, run, data, best, out, json);
  if (json) std::printf("%s\n", out.dump().c_str());
  return 0;
}
