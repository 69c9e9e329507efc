#!/usr/bin/env python3
"""Train an mtlite model in PyTorch with DistributedDataParallel, on rows that `mtlite encode`
wrote, and export it for mtlite from rank 0.

    /usr/bin/python3 examples/pytorch/train_ddp.py ENC_DIR OUT_PREFIX [--procs 2] [--epochs N]
        [--patience N] [--batch-size N] [--lr X] [--seed N]

ENC_DIR holds model.json, train.safetensors and valid.safetensors (`mtlite encode --config
model.json --fit TRAIN --out ENC_DIR train=TRAIN valid=VALID`). --procs processes (gloo backend,
rendezvous on 127.0.0.1, torch.multiprocessing.spawn; 1 runs the same code in one process) each
train on their share of the rows (DistributedSampler); DDP averages the gradients, so a global
batch of --batch-size rows is split between them. Adam, as `mtlite train`. After every epoch each
rank scores the validation rows (their weights are identical), so all take the same decision:
the best epoch by the validation AUC of the first main task is kept, and training stops after
--patience epochs without a better one. Defaults come from model.json's "training" block.

Writes OUT_PREFIX.json (the spec, the fitted data bindings and the tensors map) and
OUT_PREFIX.safetensors, which `mtlite convert OUT_PREFIX.safetensors --config OUT_PREFIX.json`
turns into a model file that `mtlite eval` and `predict` score from raw CSV rows; and
OUT_PREFIX.train.json with the epochs and validation AUCs.
"""

import argparse
import copy
import json
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "python"))
import mtlite_torch as mt  # noqa: E402


def auc(scores, labels):
    """Exact ROC AUC over all rows, ties counted half (as mtlite eval computes it, unweighted)."""
    order = torch.argsort(scores)
    s, y = scores[order], labels[order] > 0.5
    _, inverse, counts = torch.unique_consecutive(s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]  # 1-based, averaged over ties
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


@torch.no_grad()
def valid_auc(model, rows, output):
    model.eval()
    b = rows.batch(range(len(rows)))
    score = model(b.dense, b.ids, b.bags)[output]
    mask = b.masks[output] > 0
    model.train()
    return auc(score[mask], b.labels[output][mask])


def worker(rank, world, args, port):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    with open(os.path.join(args.enc, "model.json")) as f:
        doc = json.load(f)
    training = doc.get("training", {})
    epochs = args.epochs or training.get("epochs", 10)
    patience = args.patience if args.patience is not None else training.get("patience", 3)
    batch = args.batch_size or training.get("batch_size", 256)
    lr = args.lr or training.get("lr", 0.001)
    train = mt.EncodedRows(os.path.join(args.enc, "train.safetensors"), doc)
    valid = mt.EncodedRows(os.path.join(args.enc, "valid.safetensors"), doc)

    model = mt.MtliteModel(doc, seed=args.seed)  # the same start on every rank
    ddp = DistributedDataParallel(model)
    opt = torch.optim.Adam(ddp.parameters(), lr=lr)
    sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    loader = DataLoader(train, batch_size=max(1, batch // world), sampler=sampler, collate_fn=train.batch)
    metric = next(t["name"] for t in model.spec["tasks"] if t["role"] == "main")

    best, best_auc, best_epoch, bad, history = None, float("-inf"), 0, 0, []
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        sampler.set_epoch(epoch)
        total, steps = 0.0, 0
        for b in loader:
            opt.zero_grad()
            loss = mt.multitask_loss(model.spec, ddp(b.dense, b.ids, b.bags), b.labels, b.masks, b.weights)
            loss.backward()
            opt.step()
            total += float(loss)
            steps += 1
        m = valid_auc(model, valid, metric)
        improved = m > best_auc
        if improved:
            best, best_auc, best_epoch, bad = copy.deepcopy(ddp.state_dict()), m, epoch, 0
        else:
            bad += 1
        history.append({"epoch": epoch, "train_loss": total / max(1, steps), "valid_auc": m,
                        "seconds": time.time() - t0})
        if rank == 0:
            print(f"epoch {epoch}/{epochs}  loss {total / max(1, steps):.5f}  valid {metric} AUC {m:.5f}"
                  f"  {time.time() - t0:.1f} s{'  (best)' if improved else ''}", flush=True)
        if patience and bad >= patience:
            break
    if rank == 0:
        model.load_state_dict(best)  # saved from the DDP wrapper: "module." prefixes, stripped
        mt.export(ddp, doc, args.out)
        with open(args.out + ".train.json", "w") as f:
            json.dump({"procs": world, "best_epoch": best_epoch, "epochs_done": len(history),
                       "valid_auc": best_auc, "metric": metric, "history": history}, f)
        print(f"best epoch {best_epoch}; wrote {args.out}.json and {args.out}.safetensors", flush=True)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("enc", help="the folder mtlite encode wrote")
    p.add_argument("out", help="the output prefix")
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--epochs", type=int)
    p.add_argument("--patience", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    if args.procs < 1:
        p.error("--procs must be at least 1")
    mp.spawn(worker, args=(args.procs, args, free_port()), nprocs=args.procs, join=True)


if __name__ == "__main__":
    main()
