"""Evaluation of a generation run: outputs, ROUGE/BERTScore, reference NLL, uncertainty.

For each evaluation set: the N=0 output of every input (posterior mean, greedy or beam), S
sampled outputs per input for each S > 0 asked for (default: ``gen_samples``), and the
per-token NLL of the references. Samples come from the weights (one posterior sample per
output, greedy decoding) for a Bayesian run, from decoding noise (temperature / top-p at the
mean weights) otherwise (``gen_noise``). The reference NLL of an N=S row with weight samples
is that of the sequence-level posterior predictive, -log mean_s p_s(reference), per token;
with decoding noise the weights are the N=0 ones, and so is the NLL. The outputs are written
as JSONL beside the results (predictions/TAG-DATASET-N{n}.jsonl).
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch

from ..atomic import write_text_atomic
from ..data.batching import batch_seed, global_batches, my_batches
from ..posterior_stats import sigma_stats
from ..run.context import RunContext
from ..run.evaluate import eval_set, resolve_samples, row_head
from ..run.files import dataset_label, write_json
from .checks import generation_sampler


class GenerationEvaluator:
    """A generation run's evaluator: outputs, their scores and the reference NLL."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._bert: Any = None

    def decode_settings(self, max_new_tokens: int | None = None) -> Any:
        from .predict import DecodeSettings

        cfg = self.ctx.cfg
        return DecodeSettings(
            max_new_tokens=max_new_tokens or cfg.max_new_tokens,
            num_beams=cfg.num_beams,
            sampler=generation_sampler(cfg, self.ctx.setup.model.is_bayesian),
            prompt=cfg.gen_prompt,
            temperature=cfg.gen_temperature,
            top_p=cfg.gen_top_p,
            batch_size=cfg.eval_batch_size,
        )

    def evaluate(
        self,
        samples: list[int] | None = None,
        datasets: list[str] | None = None,
        tag: str = "final",
        write: bool = True,
    ) -> list[dict[str, Any]]:
        cfg, setup = self.ctx.cfg, self.ctx.setup
        samples = resolve_samples(self.ctx.cfg, samples, generates=True)
        names = datasets if datasets is not None else [cfg.dataset, *cfg.eval_datasets]
        setup.model.eval()
        bayes = sigma_stats(setup.model) if tag == "final" or write else None
        if tag == "final":
            self.ctx.same_as_mean = []
        settings = self.decode_settings()
        bert = self._bert_scorer() if cfg.bertscore and self.ctx.acc.is_main_process else None
        rows = []
        for name in names:
            examples = eval_set(self.ctx, name)
            outputs = self._generate_all(examples, samples, settings, dataset_label(name))
            # decoding noise samples at the N=0 weights: its NLL is the N=0 one
            draws = {n: n if settings.sampler == "weights" else 0 for n in samples}
            nlls = {d: self.reference_nll(examples, d) for d in sorted(set(draws.values()))}
            nll = {n: nlls[d] for n, d in draws.items()}
            if not self.ctx.acc.is_main_process:
                continue
            refs = [ex.references for ex in examples]
            mean = outputs.get(0)
            largest = max((n for n in samples if n), default=None)
            for n in samples:
                row, per_input = self._metrics(n, outputs, refs, largest, bert)
                row = {
                    **row_head(self.ctx, name, n, len(examples)),
                    "task": "generate",
                    "sampler": "mean" if n == 0 else settings.sampler,
                    **row,
                    "nll": nll[n],
                    **(bayes or {}),
                }
                rows.append(row)
                if (
                    n and mean is not None and tag == "final" and name == cfg.dataset
                    and settings.sampler == "weights"
                    and all(set(s) == {m} for s, m in zip(outputs[n][0], mean[0], strict=True))
                ):  # fmt: skip
                    self.ctx.same_as_mean.append(n)
                if write:
                    self._write_outputs(tag, name, n, examples, outputs[n], per_input)
        if write and self.ctx.acc.is_main_process:
            write_json(self.ctx.files.results(tag), rows)
        return rows

    def _metrics(self, n: int, outputs: dict, refs: list, largest: int | None, bert: Any):
        from .summary import mean_output_metrics, sample_metrics

        if n == 0:
            # the N=0 output's uncertainty: the disagreement of the largest sample set
            disagreement = outputs[largest][1] if largest is not None else None
            return mean_output_metrics(outputs[0][0], refs, disagreement, bert)
        return sample_metrics(outputs[n][0], refs, outputs[n][1], bert)

    def _generate_all(
        self, examples: list, samples: list[int], settings: Any, label: str
    ) -> dict[int, tuple[list, list | None]]:
        """{n: (outputs per input, disagreement per input or None)}, gathered over
        processes in the examples' order (each process generates its share of the batches,
        seeded per batch: the outputs do not depend on the number of processes)."""
        from .predict import generate_outputs, plan_batches

        acc, setup = self.ctx.acc, self.ctx.setup
        out: dict[int, tuple[list, list | None]] = {}
        for n in samples:
            batches = plan_batches(examples, n, settings)
            share = my_batches(batches, acc.process_index, acc.num_processes)
            with self.ctx.autocast():
                res = generate_outputs(
                    setup.model, setup.tokenizer, setup.task.prompts, examples, n, self.ctx.cfg.seed,
                    settings, with_mean=n == 0, progress=acc.is_main_process,
                    desc=f"generate {label} N={n}", batches=share,
                )  # fmt: skip
            texts = res.mean if n == 0 else res.samples
            disagreement = res.disagreement or [None] * len(examples)
            mine = sorted(i for _, idx in share for i in idx)
            items = [(i, texts[i], disagreement[i]) for i in mine]
            if acc.num_processes > 1:
                from accelerate.utils import gather_object

                items = sorted(gather_object(items), key=lambda t: t[0])
            out[n] = ([t[1] for t in items], [t[2] for t in items] if n else None)
        return out

    @torch.no_grad()
    def reference_nll(self, examples: list, n_samples: int) -> float:
        """Per-token NLL of every reference of every input: at the posterior mean (N=0),
        else of the sequence-level predictive over ``n_samples`` weight samples."""
        from ..data import text_size
        from ..tasks.generation import reference_pairs

        acc = self.ctx.acc
        pairs = reference_pairs(examples)
        batches = global_batches([text_size(p) for p in pairs], self.ctx.cfg.eval_batch_size)
        total = torch.zeros(2, dtype=torch.float64)  # (sum of log p, target tokens)
        devices = [acc.device] if acc.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # seeded draws; training's RNG untouched
            for k, idx in my_batches(batches, acc.process_index, acc.num_processes):
                torch.manual_seed(batch_seed(self.ctx.cfg.seed, k))
                total += self._batch_logprob([pairs[j] for j in idx], n_samples)
        if acc.num_processes > 1:
            total = acc.reduce(total.to(acc.device), reduction="sum").cpu()
        return float(-total[0] / total[1].clamp_min(1))

    def _batch_logprob(self, pairs: list, n_samples: int) -> torch.Tensor:
        """(sum of log p(reference), reference tokens) of one batch of (input, reference)."""
        from ..predictive import weight_draws

        setup = self.ctx.setup
        batch = self.ctx.to_device(setup.task.collate(pairs))
        draws = []
        with self.ctx.autocast():
            for _ in weight_draws(setup.model, n_samples):
                logp, tokens = setup.task.sequence_logprobs(setup.model.model, batch)
                draws.append(logp.double().cpu())
        logp = torch.logsumexp(torch.stack(draws), 0) - math.log(len(draws))
        return torch.stack([logp.sum(), tokens.sum().double().cpu()])

    def _bert_scorer(self) -> Any:
        if self._bert is None:
            from .metrics import bert_scorer

            self._bert = bert_scorer(device=str(self.ctx.acc.device))
        return self._bert

    def _write_outputs(
        self, tag: str, name: str, n: int, examples: list, outputs: tuple, per_input: list
    ) -> None:
        """One JSON line per input: its id, source, references, output(s) and scores."""
        texts, disagreement = outputs
        lines = []
        for i, ex in enumerate(examples):
            item: dict[str, Any] = {"index": i, "id": ex.id, "source": ex.source,
                                    "references": list(ex.references)}  # fmt: skip
            if n == 0:
                item["output"] = texts[i]
            else:
                item["samples"] = texts[i]
                item["disagreement"] = disagreement[i]
            lines.append(json.dumps(item | per_input[i]))
        path = self.ctx.files.generations(tag, dataset_label(name), n)
        write_text_atomic(path, "".join(line + "\n" for line in lines))
