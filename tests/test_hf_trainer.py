import torch
from tiny_models import tiny_bert
from transformers import TrainingArguments

from blob_lora import KLSchedule, get_blob_model
from blob_lora.hf_trainer import BlobTrainer


class _Data(torch.utils.data.Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(3, 64, (16, 6), generator=g)
        self.labels = (self.ids[:, 0] % 3).long()

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def test_trainer_adds_kl_and_trains_std_params(tmp_path):
    blob = get_blob_model(
        tiny_bert(), target_modules=["query", "value"], modules_to_save=["classifier"]
    )
    g_before = {
        n: p.detach().clone() for n, p in blob.named_trainable_parameters() if n.endswith("_g")
    }
    kl_before = blob.kl().item()
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        max_steps=4,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        logging_steps=1,
    )
    trainer = BlobTrainer(
        model=blob,
        args=args,
        train_dataset=_Data(),
        kl_schedule=KLSchedule("elbo", n_train=16, global_batch=8),
    )
    trainer.train()
    logged = [h for h in trainer.state.log_history if "kl" in h]
    assert logged and all(h["kl"] > 0 for h in logged)
    moved = [
        n
        for n, p in blob.named_trainable_parameters()
        if n.endswith("_g") and not torch.equal(p, g_before[n])
    ]
    assert moved
    assert blob.kl().item() != kl_before


def _one_step(tmp_path, batch, accum):
    torch.manual_seed(0)
    model = tiny_bert()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # no dropout draws: the two runs must agree exactly
    blob = get_blob_model(model, target_modules=["query", "value"], modules_to_save=["classifier"])
    args = TrainingArguments(
        output_dir=str(tmp_path / f"b{batch}"),
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accum,
        max_steps=1,
        learning_rate=0.5,
        optim="sgd",
        lr_scheduler_type="constant",
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=3,
    )
    trainer = BlobTrainer(
        model=blob,
        args=args,
        train_dataset=_Data(),
        kl_schedule=KLSchedule("uniform", n_train=16, global_batch=8),
    )
    with blob.sampling("mean"):  # no weight noise: the two runs must agree exactly
        trainer.train()
    return {n: p.detach().clone() for n, p in blob.named_trainable_parameters()}


def test_gradient_accumulation_counts_nll_and_kl_once_per_step(tmp_path):
    """Batch 8 in one pass and 2 x 4 accumulated take the same SGD step: the NLL is
    a mean over the 8 examples and the KL term is added once, not once per micro-batch."""
    whole = _one_step(tmp_path, batch=8, accum=1)
    accumulated = _one_step(tmp_path, batch=4, accum=2)
    for name, value in whole.items():
        assert torch.allclose(value, accumulated[name], rtol=1e-4, atol=1e-9), name
