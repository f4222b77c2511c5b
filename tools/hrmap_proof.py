"""HRMapNet proof: the same trained weights evaluated on the val drive without and with the
historical raster map.

    python tools/hrmap_proof.py configs/hrmapnet/hrmapnet_maptr_tiny_synthetic.py CKPT \
        --work-dir work_dirs/hrmap_proof [--fusion max|probabilistic] [--threshold 0.3] \
        [--increment 25 --decay 5] [--no-oracle] [--skip-trainmap] [--cfg-options key=value ...]

Protocols (each a fresh runner on the same checkpoint; VectorMapMetric on the val split):

* ``without_map``: the prior switched off;
* ``second``: val pass 1 builds the map from the model's predictions, pass 2 uses it (a
  second traversal of the same streets);
* ``revisit``: the val route's other drives (``create_data.py synthetic --revisits K``: the
  same streets among other traffic, never trained on) build the map from the model's
  predictions, then the val drive uses it: a traversal after earlier, independent ones.
  Skipped with a note when the dataset has no ``revisit`` split;
* ``trainmap``: a pass over the train drives builds the map, then val uses it (and a further
  val pass adds the first val traversal);
* ``gtmap`` (oracle, unless ``--no-oracle``): the map drawn from the train drives' ground truth.

``--query-stats`` adds hit / false counts of seeded and learned queries on the val drive,
without the map and with the first pass's map (:mod:`perception.evaluation.map_query_stats`).

Writes ``<work-dir>/results_<fusion>_<threshold>.json`` and prints it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from mmengine.config import DictAction  # noqa: E402

from perception.config import load_config  # noqa: E402
from perception.engine import build_runner  # noqa: E402

MAP_FILE = "hrmap_global_map.npz"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "work_dirs" / "hrmap_proof")
    parser.add_argument("--fusion", choices=("max", "probabilistic"), default="max")
    parser.add_argument("--threshold", type=float, default=0.3, help="score above which predictions enter the map")
    parser.add_argument("--increment", type=int, default=25, help="probabilistic fusion: increment per hit")
    parser.add_argument("--decay", type=int, default=5, help="probabilistic fusion: decay per miss")
    parser.add_argument("--train-ann-file", default=None,
                        help="info file of the train drives (default: the test ann_file with 'val' -> 'train')")
    parser.add_argument("--revisit-ann-file", default=None,
                        help="info file of the val route's revisit drives (default: the test ann_file with "
                             "'val' -> 'revisit')")
    parser.add_argument("--no-oracle", action="store_true", help="skip the ground-truth-drawn map")
    parser.add_argument("--figure", type=Path, default=None,
                        help="PNG: val frames' ground truth and predictions without / with the revisit drives' map "
                             "(the second pass's map when the dataset has no revisits)")
    parser.add_argument("--figure-frames", type=int, nargs="+", default=[3, 8], help="val indices drawn")
    parser.add_argument("--skip-trainmap", action="store_true",
                        help="skip the protocol that first runs the model over the train drives (the slowest)")
    parser.add_argument("--query-stats", action="store_true",
                        help="count hits / false firings of seeded vs learned queries with the first pass's map")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default=None,
                        help="config overrides for every protocol, e.g. model.bev_prior.query_init.score_threshold=1.01 "
                             "(no seeded queries: the map only reaches the BEV features)")
    return parser.parse_args(argv)


class Proof:
    """Builds one runner per protocol from the config with the chosen map settings."""

    def __init__(self, args: argparse.Namespace) -> None:
        if not args.checkpoint.is_file():
            raise FileNotFoundError(f"no checkpoint at {args.checkpoint} (train the HRMapNet config first)")
        self.args = args
        test_set = load_config(args.config, args.cfg_options).test_dataloader.dataset
        if args.train_ann_file is None:
            args.train_ann_file = test_set.ann_file.replace("val", "train")
        if args.revisit_ann_file is None:
            args.revisit_ann_file = test_set.ann_file.replace("val", "revisit")
        self.data_root = Path(test_set.get("data_root") or "")
        args.work_dir.mkdir(parents=True, exist_ok=True)

    def config(self, ann_file: str | None = None, enabled: bool = True) -> Any:
        cfg = load_config(self.args.config, self.args.cfg_options)
        prior = cfg.model.bev_prior
        prior.enabled = enabled
        prior.global_map.fusion = self.args.fusion
        prior.update_score_threshold = self.args.threshold
        prior.global_map.increment, prior.global_map.decay = self.args.increment, self.args.decay
        if ann_file:
            cfg.test_dataloader.dataset.ann_file = ann_file
        return cfg

    def runner(self, name: str, ann_file: str | None = None, load_map: Path | None = None,
               enabled: bool = True) -> Any:
        cfg = self.config(ann_file, enabled)
        cfg.work_dir = str(self.args.work_dir / name)
        cfg.load_from, cfg.resume = str(self.args.checkpoint), False
        cfg.custom_hooks = [dict(type="HRMapPassHook", load_from=None if load_map is None else str(load_map),
                                 save_name=MAP_FILE)]
        cfg.test_evaluator = dict(type="VectorMapMetric", class_names=cfg.map_classes)
        return build_runner(cfg)

    def saved_map(self, name: str) -> Path:
        """The map that protocol run ``name``'s passes saved (``HRMapPassHook``)."""
        return self.args.work_dir / name / MAP_FILE

    def revisit_infos(self) -> Path | None:
        """The revisit drives' info file, or None when the dataset was made without them."""
        path = Path(self.args.revisit_ann_file)
        path = path if path.is_absolute() else self.data_root / path  # as the dataset resolves it
        return path if path.is_file() else None

    def oracle_map(self) -> Path:
        """The map drawn from the train drives' ground truth, saved next to the runs."""
        from mmengine.registry import init_default_scope

        from perception.registry import DATASETS
        init_default_scope("perception")
        dataset = DATASETS.build(self.config(self.args.train_ann_file).test_dataloader.dataset)
        prior = self.runner("gtmap_build", enabled=False).model.bev_prior
        for index in range(len(dataset)):
            prior.update_with_ground_truth([dataset[index]["data_samples"]])
        prior.global_map.commit()
        path = self.args.work_dir / "gtmap_train.npz"
        prior.global_map.save(path)
        return path


def draw_figure(proof: Proof, map_path: Path, out: Path, frames: list[int], map_name: str = "val-drive") -> None:
    """Ground truth, predictions without the map and with the map at ``map_path`` (score >= 0.3)
    for ``frames`` of the val split, one row each; ``map_name`` names the map in the titles."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mmengine.dataset import pseudo_collate

    runner = proof.runner("figure")
    runner.load_checkpoint(str(proof.args.checkpoint))
    model = runner.model.eval()
    model.load_global_map(str(map_path))
    dataset = runner.test_dataloader.dataset
    colours = ("tab:red", "tab:green", "tab:blue")
    x0, y0, x1, y1 = proof.config().map_range
    panel = 3.2 / max(x1 - x0, y1 - y0)
    size = (3 * (x1 - x0) * panel + 1.5, len(frames) * ((y1 - y0) * panel + 0.6))
    fig, axes = plt.subplots(len(frames), 3, figsize=size, squeeze=False)
    for row, index in enumerate(frames):
        item = dataset[index]
        outputs = {}
        for enabled in (False, True):
            model.bev_prior.enabled = enabled
            with torch.no_grad():
                outputs[enabled] = model.test_step(pseudo_collate([item]))[0]
        points = item["inputs"]["points"].numpy()
        gt = outputs[True].gt_map
        panels = (("ground truth", gt), ("no map", outputs[False].pred_map),
                  (f"with the {map_name} map", outputs[True].pred_map))
        for col, (title, instances) in enumerate(panels):
            ax = axes[row, col]
            ax.scatter(points[:, 0], points[:, 1], s=0.05, c="0.8", rasterized=True)
            keep_mask = np.ones(len(instances), bool) if instances.scores is None else instances.scores >= 0.3
            for pts, label in zip(instances.points[keep_mask], instances.labels[keep_mask]):
                ax.plot(pts[:, 0], pts[:, 1], "-", lw=1.5, color=colours[int(label) % 3])
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            ax.set_aspect("equal")
            ax.set_title(f"frame {index}: {title}", fontsize=8)
    fig.suptitle(f"HRMapNet ({proof.args.config.stem}): divider red, ped_crossing green, boundary blue",
                 fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


def slot_outputs(model: Any, data: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per one-to-one query of the batch's first sample: metric points ``(Q, P, 2)``, best class,
    its score and whether a map seed started the query."""
    from perception.models.map.geometry import denormalize
    head = model.map_head
    head_inputs = model._head_inputs(data["inputs"], data["data_samples"])
    outputs = head(**head_inputs)
    seeds = head_inputs.get("seeds")
    cls, pts = head.one_to_one(outputs["cls"][-1], outputs["pts"][-1], seeds is not None)
    scores, labels = cls[0].sigmoid().max(dim=-1)
    seeded = torch.zeros(cls.shape[1], dtype=torch.bool)
    if seeds is not None:
        seeded[head.num_queries:] = seeds.mask[0].cpu()
    elif head_inputs.get("query_init") is not None:
        seeded = head_inputs["query_init"][0].abs().sum(dim=-1).cpu() > 0
    points = denormalize(pts[0].float(), head.map_range).cpu().numpy()
    return points, labels.cpu().numpy(), scores.cpu().numpy(), seeded.numpy()


def query_stats(proof: Proof, maps: dict[str, Path]) -> dict[str, dict[str, int]]:
    """Summed :func:`query_hits` counts over the val drive without a map and with each of
    ``maps`` (name -> saved map), reported under ``without_map`` and the maps' names."""
    from mmengine.dataset import pseudo_collate

    from perception.evaluation.map_query_stats import query_hits
    runner = proof.runner("query_stats")
    runner.load_checkpoint(str(proof.args.checkpoint))
    model = runner.model.eval()
    dataset = runner.test_dataloader.dataset
    closed = {int(i) for i in np.flatnonzero(model.map_head.closed_labels.numpy())}
    results = {}
    for name, map_path in (("without_map", None), *maps.items()):
        model.bev_prior.enabled = map_path is not None
        if map_path is not None:
            model.load_global_map(str(map_path))
        total: dict[str, int] = {}
        for index in range(len(dataset)):
            data = model.data_preprocessor(pseudo_collate([dataset[index]]), False)
            with torch.no_grad():
                counts = query_hits(*slot_outputs(model, data), data["data_samples"][0].gt_map, closed,
                                    proof.args.threshold)
            for key, value in counts.items():
                total[key] = total.get(key, 0) + int(value)
        results[name] = total
    return results


def keep(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: round(float(value), 4) for key, value in metrics.items() if "mAP" in key or "AP_standard" in key}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    proof = Proof(args)
    results: dict[str, Any] = {"without_map": keep(proof.runner("none", enabled=False).test())}
    second = proof.runner("second")
    results["second/pass1"] = keep(second.test())
    results["second/pass2"] = keep(second.test())
    if proof.revisit_infos() is None:
        results["revisit"] = (f"no {args.revisit_ann_file} (make the dataset with "
                              "tools/create_data.py synthetic --revisits K)")
    else:
        results["revisit_drives_pass"] = keep(proof.runner("revisit_build", ann_file=args.revisit_ann_file,
                                                           enabled=False).test())
        revisit = proof.runner("revisit", load_map=proof.saved_map("revisit_build"))
        results["revisit/pass1"] = keep(revisit.test())
    if not args.skip_trainmap:
        results["train_drives_pass"] = keep(proof.runner("trainmap_build", ann_file=args.train_ann_file,
                                                         enabled=False).test())
        trainmap = proof.runner("trainmap", load_map=proof.saved_map("trainmap_build"))
        results["trainmap/pass1"] = keep(trainmap.test())
        results["trainmap/pass2"] = keep(trainmap.test())
    if not args.no_oracle:
        results["gtmap/pass1"] = keep(proof.runner("gtmap", load_map=proof.oracle_map()).test())
    if args.query_stats:
        maps = {"first_pass_map": proof.saved_map("none")}
        if "revisit/pass1" in results:
            maps["revisit_map"] = proof.saved_map("revisit_build")
        results["query_stats"] = query_stats(proof, maps)
    out = args.work_dir / f"results_{args.fusion}_{args.threshold}.json"
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    print(f"wrote {out}")
    if args.figure is not None:
        if "revisit/pass1" in results:  # the map of earlier, independent drives
            draw_figure(proof, proof.saved_map("revisit_build"), args.figure, args.figure_frames, "revisit drives'")
        else:
            draw_figure(proof, proof.saved_map("second"), args.figure, args.figure_frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
