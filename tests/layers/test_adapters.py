import math

import pytest
import torch
from peft import LoraConfig, get_peft_model
from tiny_models import randomize_adapters, tiny_bart, tiny_bert, tiny_gpt2, tiny_llama
from torch import nn

from blob_lora import AdapterConfig, ConfigError, get_blob_model
from blob_lora.layers import BBBLayer, BLoBLayer, LoRALayer


def _layer(kind="blob", sample_mode="sequence", in_f=6, out_f=5, r=3, std_param="square"):
    torch.manual_seed(0)
    cfg = AdapterConfig(
        kind=kind,
        r=r,
        alpha=2 * r,
        target_modules=["x"],
        sample_mode=sample_mode,
        std_param=std_param,
    )
    layer = {"lora": LoRALayer, "blob": BLoBLayer, "bbb": BBBLayer}[kind](
        nn.Linear(in_f, out_f), cfg
    )
    with torch.no_grad():
        layer.lora_B.normal_()
        if kind != "lora":
            layer.lora_A_g.fill_(0.5)
    return layer


@pytest.mark.parametrize("std_param", ["square", "softplus"])
def test_std_init_in_paper_range(std_param):
    layer = _layer(std_param=std_param, in_f=200, r=8)
    cfg_eps = 0.05
    layer2 = BLoBLayer(
        nn.Linear(200, 4), AdapterConfig(r=8, target_modules=["x"], std_param=std_param)
    )
    omega = layer2.std_A
    assert omega.min() >= (cfg_eps / math.sqrt(2)) ** 2 - 1e-7
    assert omega.max() <= cfg_eps**2 + 1e-7
    if std_param == "square":
        g = layer2.lora_A_g
        assert g.min() >= cfg_eps / math.sqrt(2) and g.max() <= cfg_eps
    assert layer.lora_A.abs().max() <= 1 / math.sqrt(200)  # kaiming bound of LoRA's A


def test_b_starts_at_zero_so_adapter_starts_as_base():
    layer = BLoBLayer(nn.Linear(6, 5), AdapterConfig(target_modules=["x"]))
    x = torch.randn(2, 3, 6)
    layer.train()
    assert torch.equal(layer(x), layer.base(x))


def test_gradients_reach_adapter_params_and_nothing_frozen():
    model = get_blob_model(
        tiny_llama(), kind="blob", target_modules=["q_proj", "v_proj", "lm_head"]
    )
    randomize_adapters(model)
    model.train()
    ids = torch.randint(3, 64, (2, 5))
    loss = model(input_ids=ids, labels=ids).loss + model.kl().float()
    loss.backward()
    for name, param in model.model.named_parameters():
        if param.requires_grad:
            assert any(name.endswith(s) for s in ("lora_A", "lora_A_g", "lora_B")), name
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name


@pytest.mark.parametrize("kind,extra_per_layer", [("blob", "A"), ("bbb", "AB")])
def test_trainable_count_is_lora_plus_std_params(kind, extra_per_layer):
    targets = ["q_proj", "v_proj", "lm_head"]
    lora = get_blob_model(tiny_llama(), kind="lora", r=4, target_modules=targets)
    bayes = get_blob_model(tiny_llama(), kind=kind, r=4, target_modules=targets)
    peft = get_peft_model(tiny_llama(), LoraConfig(r=4, target_modules=targets))
    n_peft = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    assert lora.num_trainable_parameters() == n_peft
    extra = 0
    for layer in bayes.adapters().values():
        extra += 4 * layer.in_features
        if extra_per_layer == "AB":
            extra += 4 * layer.out_features
    assert bayes.num_trainable_parameters() == n_peft + extra


def _copy_into_peft(blob, peft_model):
    with torch.no_grad():
        for name, layer in blob.adapters().items():
            target = peft_model.base_model.model.get_submodule(name)
            target.lora_A["default"].weight.copy_(layer.lora_A)
            target.lora_B["default"].weight.copy_(layer.lora_B)


@pytest.mark.parametrize("kind", ["blob", "bbb"])
def test_mean_mode_is_deterministic_and_equals_plain_lora(kind, input_ids):
    targets = ["q_proj", "v_proj", "lm_head"]
    blob = get_blob_model(tiny_llama(), kind=kind, r=4, alpha=8, target_modules=targets)
    randomize_adapters(blob)
    peft = get_peft_model(tiny_llama(), LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    _copy_into_peft(blob, peft)
    blob.eval()
    peft.eval()
    with torch.no_grad():
        a = blob(input_ids=input_ids).logits
        b = blob(input_ids=input_ids).logits
        ref = peft(input_ids=input_ids).logits
        with blob.sampling("sequence"):
            s1 = blob(input_ids=input_ids).logits
            s2 = blob(input_ids=input_ids).logits
    assert torch.equal(a, b)
    assert torch.allclose(a, ref, atol=1e-6)
    assert not torch.allclose(s1, s2, atol=1e-4)
    assert not torch.allclose(s1, a, atol=1e-4)


def test_auto_mode_samples_in_train_and_uses_mean_in_eval(input_ids):
    blob = get_blob_model(tiny_llama(), target_modules=["q_proj"])
    randomize_adapters(blob)
    with torch.no_grad():
        blob.eval()
        e1, e2 = blob(input_ids=input_ids).logits, blob(input_ids=input_ids).logits
        blob.train()
        t1, t2 = blob(input_ids=input_ids).logits, blob(input_ids=input_ids).logits
    assert torch.equal(e1, e2)
    assert not torch.allclose(t1, t2)


def test_sequence_mode_one_sample_per_sequence():
    layer = _layer("blob", "sequence")
    u, v = torch.randn(6), torch.randn(6)
    # sequence 0 and 1 hold the same tokens: u, u, v, u+v
    seq = torch.stack([u, u, v, u + v])
    x = torch.stack([seq, seq])
    with torch.no_grad():
        layer.noise.mode = "sequence"
        d = layer.delta(x)
    assert torch.allclose(d[:, 0], d[:, 1])  # same token, same sequence: same weight
    assert torch.allclose(d[:, 3], d[:, 0] + d[:, 2], atol=1e-5)  # one linear map per sequence
    assert not torch.allclose(d[0], d[1])  # different sequences: different samples


def test_flipout_mode_varies_per_token():
    layer = _layer("blob", "flipout")
    u = torch.randn(6)
    x = torch.stack([u, u, u, u]).unsqueeze(0)
    layer.noise.mode = "flipout"
    with torch.no_grad():
        d = layer.delta(x)
    assert not torch.allclose(d[0, 0], d[0, 1])


@pytest.mark.parametrize("mode", ["sequence", "flipout"])
def test_noise_variance_matches_analytic(mode):
    """Var(h_j) = sum_i x_i^2 Omega_ji^2 for both estimators (flipout draws its noise matrix
    once per call, so sample over many calls)."""
    layer = _layer("blob", mode, in_f=6, out_f=5, r=3)
    torch.manual_seed(3)
    x = torch.randn(6)
    calls, per_call = 5000, 8
    xs = x.expand(per_call, 1, 6).contiguous()
    with torch.no_grad():
        h = torch.cat([layer.low_rank(xs, mode).reshape(per_call, 3) for _ in range(calls)])
        mean_h = layer.lora_A @ x
        var_expected = (x**2 * layer.std_A**2).sum(-1)
    assert torch.allclose(
        h.mean(0), mean_h, atol=5 * float(var_expected.sqrt().max()) / math.sqrt(calls)
    )
    assert torch.allclose(h.var(0), var_expected, rtol=0.06)


def test_bbb_samples_both_factors():
    layer = _layer("bbb", "sequence")
    with torch.no_grad():
        layer.lora_A_g.fill_(0.0)  # A deterministic: all variance must come from B
        layer.lora_B_g.fill_(0.5)
        layer.noise.mode = "sequence"
        x = torch.randn(1, 2, 6).expand(2, 2, 6)
        d = layer.delta(x)
    assert not torch.allclose(d[0], d[1])
    with torch.no_grad():
        layer.lora_A_g.fill_(0.3)
        from blob_lora.layers import gaussian_kl

        expected = gaussian_kl(layer.lora_A, layer.std_A, 0.2) + gaussian_kl(
            layer.lora_B, layer.std_B, 0.2
        )
    assert torch.allclose(layer.kl(), expected)


def test_generate_keeps_one_sample_per_sequence_across_kv_cache_steps(input_ids):
    blob = get_blob_model(tiny_llama(), target_modules=["q_proj", "v_proj", "lm_head"])
    randomize_adapters(blob, scale=0.3)
    blob.eval()
    kwargs = dict(
        max_new_tokens=6,
        do_sample=False,
        use_cache=True,
        return_dict_in_generate=True,
        output_logits=True,
        pad_token_id=0,
    )
    with torch.no_grad(), blob.sampling("sequence"), blob.frozen_noise():
        out = blob.model.generate(input_ids=input_ids, **kwargs)
        full = blob(input_ids=out.sequences).logits
    prompt = input_ids.shape[1]
    steps = torch.stack(out.logits, dim=1)
    assert torch.allclose(steps, full[:, prompt - 1 : -1], atol=1e-4)
    # rows of one batch get different samples: the same prompt twice gives different logits
    same = input_ids[:1].expand(2, -1)
    with torch.no_grad(), blob.sampling("sequence"):
        out2 = blob.generate(input_ids=same, **kwargs)
    assert not torch.allclose(out2.logits[0][0], out2.logits[0][1])
    # without frozen noise the cached steps do not match one coherent sample
    with torch.no_grad(), blob.sampling("sequence"):
        out3 = blob.model.generate(input_ids=input_ids, **kwargs)
        with blob.frozen_noise():
            full3 = blob(input_ids=out3.sequences).logits
    assert not torch.allclose(torch.stack(out3.logits, 1), full3[:, prompt - 1 : -1], atol=1e-4)


def test_gpt2_conv1d_matches_peft(input_ids):
    blob = get_blob_model(tiny_gpt2(), kind="blob", r=4, alpha=8, target_modules=["c_attn"])
    randomize_adapters(blob)
    peft = get_peft_model(
        tiny_gpt2(), LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True)
    )
    _copy_into_peft(blob, peft)
    blob.eval()
    peft.eval()
    with torch.no_grad():
        assert torch.allclose(
            blob(input_ids=input_ids).logits, peft(input_ids=input_ids).logits, atol=1e-6
        )


def test_encoder_decoder_self_and_cross_attention():
    blob = get_blob_model(tiny_bart(), target_modules=["q_proj", "k_proj", "v_proj", "lm_head"])
    names = list(blob.adapters())
    assert any(".encoder." in n and "self_attn" in n for n in names)
    assert any(".decoder." in n and "encoder_attn" in n for n in names)
    assert any(".decoder." in n and "self_attn" in n for n in names)
    randomize_adapters(blob)
    ids = torch.randint(3, 64, (2, 6))
    with torch.no_grad(), blob.sampling("sequence"):
        out = blob.generate(input_ids=ids, max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 2


def test_encoder_classifier_head_targets():
    blob = get_blob_model(tiny_bert(), target_modules=["query", "value", "classifier"])
    assert "classifier" in blob.adapters()
    logits = blob(input_ids=torch.randint(3, 64, (2, 5))).logits
    assert logits.shape == (2, 3)


class FakeQuantLinear(nn.Module):
    """A Linear-like layer with no .weight Parameter (as a quantized layer)."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("packed", torch.randn(out_features, in_features).to(torch.float16))

    def forward(self, x):
        return x @ self.packed.float().T


def test_linear_like_base_without_weight_parameter():
    model = nn.Sequential()
    model.add_module("proj", FakeQuantLinear(6, 4))
    blob = get_blob_model(model, target_modules=["proj"])
    randomize_adapters(blob)
    blob.train()
    out = blob(torch.randn(2, 3, 6))
    out.sum().backward()
    assert blob.model.proj.lora_A.grad is not None


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ConfigError, match="q_projj"):
        get_blob_model(tiny_llama(), target_modules=["q_projj"])
    with pytest.raises(ConfigError, match="r: Input should be greater than or equal to 1"):
        AdapterConfig(r=0)
    with pytest.raises(ConfigError, match="r: Input should be greater than or equal to 1"):
        AdapterConfig(r=-2)
    with pytest.raises(ConfigError, match="unknown config key 'adapter.rank'"):
        AdapterConfig.from_dict({"rank": 8})
    blob = get_blob_model(tiny_llama(), target_modules=["q_proj"])
    with pytest.raises(ConfigError, match="sampling mode"):
        with blob.sampling("sometimes"):
            pass


def test_t5_self_and_cross_attention_keep_one_sample_through_generate():
    """T5 names its attention projections q/k/v/o (EncDecAttention for cross attention)."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    cfg = T5Config(
        vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1,
        num_heads=4, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    base = T5ForConditionalGeneration(cfg).eval()
    blob = get_blob_model(base, target_modules=["q", "v", "lm_head"])
    names = list(blob.adapters())
    assert any("encoder." in n and "SelfAttention" in n for n in names)
    assert any("decoder." in n and "EncDecAttention" in n for n in names)
    assert "lm_head" in names
    randomize_adapters(blob)
    ids = torch.randint(3, 64, (2, 6))
    with torch.no_grad():
        with blob.sampling("mean"):
            mean = blob.generate(input_ids=ids, max_new_tokens=4, do_sample=False)
            again = blob.generate(input_ids=ids, max_new_tokens=4, do_sample=False)
        with blob.sampling("sequence"):
            sampled = blob.generate(input_ids=ids, max_new_tokens=4, do_sample=False)
    assert torch.equal(mean, again) and sampled.shape == mean.shape
