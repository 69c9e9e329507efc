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

const char* const kUsage =
    "usage: mtlite train --config model.json --train TRAIN [--valid VALID] --out MODEL.mtl [options]\n"
    "       mtlite train --resume MODEL.mtl --train TRAIN [--valid VALID] [--epochs N] [--threads N]\n"
    "\n"
    "Trains the model model.json describes on TRAIN (CSV/TSV, plain or gzip, read with model.json's\n"
    "\"data\" bindings), scores VALID after every epoch and keeps the best epoch by the main task's\n"
    "validation metric (AUC, or RMSE for regression). MODEL.mtl is rewritten atomically after every\n"
    "epoch: the best weights as a float model file, plus the state --resume needs.\n"
    "Defaults come from model.json's \"training\" block, then from these options:\n"
    "  --epochs N          epochs in all (default 10)\n"
    "  --batch-size N      rows per step (default 256)\n"
    "  --optimizer NAME    adam (default), adagrad or sgd\n"
    "  --lr X              learning rate (default 0.001)\n"
    "  --l2 X              L2 regularisation added to the gradient (default 0)\n"
    "  --clip-norm X       clip the global gradient norm to X (default 0: off)\n"
    "  --balance METHOD    fixed (default: the tasks' loss_weight), uncertainty, gradnorm, metabalance\n"
    "  --mb-r R            MetaBalance relax factor r in [0, 1] (default 0.7)\n"
    "  --mb-beta B         MetaBalance moving-average beta in [0, 1) (default 0.9)\n"
    "  --patience N        stop after N epochs without a better validation metric (default 3; 0: never)\n"
    "  --metric OUTPUT     the output whose validation metric selects the best epoch (default: the\n"
    "                      first main task)\n"
    "  --seed S            initial weights and shuffling (default 0)\n"
    "  --threads N         worker threads (default 1); a seed and thread count give one result\n"
    "  --affinity          measure inter-task affinity (TAG) and print the best task groupings\n"
    "  --affinity-every N  measure it every N steps (default 10)\n"
    "  --max-rows N        read at most N rows of TRAIN (and of VALID)\n"
    "  --skip-bad-rows     skip malformed rows (and report how many) instead of stopping\n"
    "  --resume MODEL.mtl  continue the run that wrote MODEL.mtl (its options and data binding)\n"
    "  --plot FILE.svg     draw the training loss and the validation metrics per epoch (rewritten\n"
    "                      after every epoch)\n"
    "  --json              print one JSON object at the end instead of text\n";

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
  if (a.has("affinity")) o.affinity_every = static_cast<std::size_t>(a.integer("affinity-every", 10, 1, 1000000000));
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
    const int k = spec.output_task(o);
    const bool binary = k < 0 || spec.tasks[static_cast<std::size_t>(k)].kind == mtlite::TaskKind::binary;
    (binary ? auc : rmse).series.push_back({spec.output_name(o), {}, {}});
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

}  // namespace

int cmd_train(int argc, char** argv) {
  const cli::Args args(argc, argv, {"affinity", "skip-bad-rows", "json", "help"},
                       {"config", "train", "valid", "out", "epochs", "batch-size", "optimizer", "lr", "l2",
                        "clip-norm", "balance", "mb-r", "mb-beta", "patience", "metric", "seed", "threads",
                        "affinity-every", "max-rows", "resume", "plot"});
  if (args.has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const bool resume = args.has("resume");
  if (!args.positional.empty() || !args.has("train") || (!resume && (!args.has("config") || !args.has("out")))) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const bool json = args.has("json");
  const std::string out_path = args.get("out", args.get("resume"));
  const mtlite::data::ReadOptions read = cli::read_options(args);

  // The run: fresh from model.json, or continued from a checkpoint.
  const auto t_start = std::chrono::steady_clock::now();
  mtlite::Spec spec;
  std::optional<mtlite::data::DataBinding> binding;
  RunConfig config;
  tr::RunProgress progress;
  std::optional<tr::Checkpoint> checkpoint;
  mtlite::data::ReadReport fitted;
  if (resume) {
    for (const char* o : {"config", "batch-size", "optimizer", "lr", "l2", "clip-norm", "balance", "mb-r", "mb-beta",
                          "metric", "seed", "affinity", "affinity-every"})
      if (args.has(o))
        throw mtlite::Error(std::string("--") + o + " cannot change on --resume: the checkpoint's run continues as it was set up");
    checkpoint = resume_checkpoint(args.get("resume"));
    spec = checkpoint->spec;
    binding = mtlite::data::DataBinding::from_json(checkpoint->data);
    apply_json(config, checkpoint->config, args.get("resume") + ": training.config");
    progress = checkpoint->progress;
    config.epochs = static_cast<std::size_t>(args.integer("epochs", static_cast<long long>(config.epochs), 1, 1000000));
    config.patience = static_cast<std::size_t>(args.integer("patience", static_cast<long long>(config.patience), 0, 1000000));
  } else {
    const Json model_json = cli::read_json(args.get("config"));
    try {
      binding = mtlite::data::DataBinding::from_json(model_json);
      spec = mtlite::data::DataBinding::spec_from_model_json(model_json);
      if (const Json* t = model_json.find("training")) apply_json(config, *t, "training");
    } catch (const mtlite::Error& e) {
      throw mtlite::Error(args.get("config") + ": " + e.what());
    }
    apply_args(config, args);
    if (!json) std::printf("fitting the data binding on %s ...\n", args.get("train").c_str());
    fitted = binding->fit(args.get("train"), spec, read);
  }
  config.options.threads = static_cast<std::size_t>(args.integer("threads", 1, 1, 256));
  config.options.validate();

  const mtlite::data::Dataset train = mtlite::data::load(args.get("train"), *binding, spec, read);
  if (train.rows == 0) throw mtlite::Error("--train: '" + args.get("train") + "' has no rows");
  std::optional<mtlite::data::Dataset> valid;
  if (args.has("valid")) valid = mtlite::data::load(args.get("valid"), *binding, spec, read);
  if (valid && valid->rows == 0) throw mtlite::Error("--valid: '" + args.get("valid") + "' has no rows");
  const bool grouped = binding->group.has_value();
  const std::size_t metric_o = metric_output(spec, config.metric);
  const bool larger_is_better = [&] {
    const int k = spec.output_task(metric_o);
    return k < 0 || spec.tasks[static_cast<std::size_t>(k)].kind == mtlite::TaskKind::binary;
  }();
  const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();

  tr::Trainer trainer(spec, config.options);
  mtlite::Weights best;
  if (checkpoint) {
    trainer.set_weights(checkpoint->current);
    trainer.load_state(checkpoint->state);
    best = std::move(checkpoint->best);
  }

  if (!json) {
    std::printf("%s: %zu rows%s", args.get("train").c_str(), train.rows,
                train.report.skipped ? (" (" + std::to_string(train.report.skipped) + " malformed rows skipped)").c_str() : "");
    if (valid) std::printf("; %s: %zu rows", args.get("valid").c_str(), valid->rows);
    std::printf(" (read in %.1f s)\n", load_seconds);
    std::printf("%s, %zu tasks, %zu parameters; %s lr %g, batch %zu, balancing %s, %zu thread%s, seed %llu\n",
                mtlite::to_string(spec.architecture), spec.tasks.size(), mtlite::parameter_count(spec),
                tr::to_string(config.options.optimizer), static_cast<double>(config.options.lr), config.batch_size,
                tr::to_string(config.options.balancing.method), config.options.threads,
                config.options.threads == 1 ? "" : "s", static_cast<unsigned long long>(config.options.seed));
    if (resume) std::printf("resuming after epoch %zu of %zu\n", progress.epochs_done, config.epochs);
  }

  double train_seconds = 0;
  std::size_t train_rows = 0;
  std::vector<mtlite::Bag> bags;
  while (progress.epochs_done < config.epochs && !progress.stopped_early) {
    EpochRecord rec;
    rec.epoch = progress.epochs_done + 1;
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<std::size_t> order = epoch_order(train.rows, config.options.seed, rec.epoch);
    const mtlite::data::Dataset shuffled = train.select(order);
    cli::ProgressBar bar("epoch " + std::to_string(rec.epoch) + "/" + std::to_string(config.epochs), train.rows,
                         "rows", !json);
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
    train_seconds += rec.seconds;
    train_rows += train.rows;

    // Validation with the runtime: exactly what a converted model will be scored with.
    bool improved = !valid;
    if (valid) {
      const mtlite::Model model(spec, trainer.weights());
      rec.valid = cli::evaluate(spec, cli::score_dataset(model, *valid), *valid, grouped);
      const double m = rec.valid[metric_o].primary();
      improved = !std::isnan(m) && (std::isnan(progress.best_metric) ||
                                    (larger_is_better ? m > progress.best_metric : m < progress.best_metric));
      if (improved) progress.best_metric = m;
    }
    progress.epochs_done = rec.epoch;
    if (improved) {
      best = trainer.weights();
      progress.best_epoch = rec.epoch;
      progress.bad_epochs = 0;
    } else {
      ++progress.bad_epochs;
      progress.stopped_early = config.patience > 0 && progress.bad_epochs >= config.patience;
    }
    rec.best = improved;
    progress.history.push(rec.to_json());
    tr::write_checkpoint(out_path, {spec, binding->to_json(), config.to_json(), progress, best, trainer.state(),
                                    improved ? mtlite::Weights{} : trainer.weights()});
    if (args.has("plot")) write_plot(args.get("plot"), spec, progress);

    if (!json) {
      std::printf("epoch %zu/%zu  loss %.5f  %s rows/s  %.1f s%s\n", rec.epoch, config.epochs, rec.train_loss,
                  cli::ProgressBar::count(rec.rows_per_second).c_str(), rec.seconds, improved && valid ? "  (best)" : "");
      print_metrics(rec.valid);
      if (progress.stopped_early)
        std::printf("no better %s %s for %zu epochs: stopping\n", spec.output_name(metric_o).c_str(),
                    larger_is_better ? "AUC" : "RMSE", config.patience);
    }
    std::fflush(stdout);
  }

  Json out = Json::object()
                 .set("out", out_path)
                 .set("bytes", cli::file_size(out_path))
                 .set("train_rows", train.rows)
                 .set("epochs_done", progress.epochs_done)
                 .set("best_epoch", progress.best_epoch)
                 .set("stopped_early", progress.stopped_early)
                 .set("threads", config.options.threads)
                 .set("config", config.to_json())
                 .set("history", progress.history);
  if (train_seconds > 0) out.set("train_rows_per_second", static_cast<double>(train_rows) / train_seconds);
  if (fitted.skipped) out.set("skipped_rows", fitted.skipped);
  if (!json)
    std::printf("\nbest epoch %zu; wrote %s (%s)\n", progress.best_epoch, out_path.c_str(),
                cli::bytes_string(cli::file_size(out_path)).c_str());

  // Diagnostics of the kept model on the validation rows.
  if (valid) {
    trainer.set_weights(best);
    if (spec.gated()) {
      const tr::GateReport report = trainer.gate_report(valid->batch(0, valid->rows, bags));
      out.set("gates", gate_json(report));
      if (!json) print_gates(spec, report);
    }
  }
  if (config.options.affinity_every) {
    out.set("affinity", affinity_json(trainer));
    if (!json) print_affinity(trainer);
  }
  if (json) std::printf("%s\n", out.dump().c_str());
  return 0;
}
