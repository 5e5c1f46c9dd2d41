"""The plain-PyTorch code equivalent to a setting, shown on each page so a student can take the idea home."""
from __future__ import annotations

from typing import cast

from explorer.config.layers import expand
from explorer.config.schema import WeightPruningConfig

_THRESHOLD_METHOD = '''\
class ThresholdPruning(prune.BasePruningMethod):
    """Keep a weight iff abs(w) > threshold."""
    PRUNING_TYPE = "unstructured"

    def __init__(self, threshold):
        self.threshold = threshold

    def compute_mask(self, t, default_mask):
        return default_mask * (t.abs() > self.threshold)

'''


def _module(name: str) -> str:
    return f"model.{name}" if name.isidentifier() else f'model.get_submodule("{name}")'


def pruning_code(wp: WeightPruningConfig, layers: list[str]) -> str:
    """Code that gives the same masks with torch.nn.utils.prune on the baseline model, then makes them permanent."""
    lines = ["import torch.nn.utils.prune as prune", ""]
    if wp.criterion == "wanda" or wp.pattern is not None:
        return "\n".join(["import torch", *lines, *scored_lines(wp, layers)])
    if wp.structured.amount is not None:
        return "\n".join(lines + structured_lines(wp, layers[:-1]))
    if not wp.is_active:
        return "\n".join([*lines, "# nothing is pruned: every weight is kept"])
    if wp.sparsity is not None:
        if wp.scope == "global":
            lines += ["params = [", *[f"    ({_module(n)}, \"weight\")," for n in layers], "]",
                      f"prune.global_unstructured(params, pruning_method=prune.L1Unstructured, "
                      f"amount={float(cast(float, wp.sparsity))!r})"]  # global: one float, as the config holds it
        else:
            amounts = expand(wp.sparsity, layers)
            lines += [f'prune.l1_unstructured({_module(n)}, name="weight", amount={float(a)!r})'
                      for n, a in amounts.items()]
    else:
        thresholds = expand(wp.threshold, layers)
        lines[1:1] = ["", _THRESHOLD_METHOD.rstrip("\n"), ""]
        lines += [f'ThresholdPruning.apply({_module(n)}, "weight", threshold={float(t)!r})'
                  for n, t in thresholds.items()]
    amounts_set = wp.sparsity or wp.threshold
    pruned = [n for n in layers if not isinstance(amounts_set, dict) or n in amounts_set]
    lines += ["", "# make it permanent: plain weights with zeros, no weight_orig / weight_mask left",
              *[f'prune.remove({_module(n)}, "weight")' for n in pruned]]
    return "\n".join(lines)


_WANDA_NORMS = '''\
# Wanda (Sun et al. 2023): the size of every input over calibration rows of the TRAINING split (never the test split)
squares = {}

def record(name):
    def hook(module, inputs):
        x = inputs[0].detach()
        if isinstance(module, torch.nn.Conv2d):  # a conv is a matrix product of its unfolded input patches
            x = torch.nn.functional.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
            x = x.transpose(1, 2).reshape(-1, x.shape[1])     # (patches, in*kh*kw)
        x = x.reshape(-1, x.shape[-1]).double()               # (rows, inputs)
        squares[name] = squares.get(name, 0) + x.pow(2).sum(0)
    return hook

handles = [layer.register_forward_pre_hook(record(name)) for name, layer in layers.items()]
with torch.no_grad():
    model(x_calibration)                     # 512 rows of x_train, picked by a seeded permutation
for h in handles:
    h.remove()
'''


def scored_lines(wp: WeightPruningConfig, layers: list[str]) -> list[str]:
    """The lines of a Wanda and/or N:M setting: scores, what each row, group or the model keeps, and
    prune.custom_from_mask."""
    dense = wp.kept_dense(layers)  # Wanda leaves the classifier dense unless the setting prunes it
    out = [f"# {', '.join(dense)}, the classifier, stays dense (Wanda's paper leaves its LM head dense)"] * bool(dense)
    layers = [n for n in layers if n not in dense]
    out += ["layers = {" + ", ".join(f'"{n}": {_module(n)}' for n in layers) + "}"]
    if wp.criterion == "wanda":
        out += [_WANDA_NORMS.rstrip("\n"),
                "scores = {n: l.weight.detach().abs().double().flatten(1) * squares[n].sqrt()",
                "          for n, l in layers.items()}"]
    else:
        out += ["scores = {n: l.weight.detach().abs().flatten(1) for n, l in layers.items()}  # magnitude |w|"]
    out += ["masks = {}"]
    if wp.pattern is not None:
        n, m = (int(x) for x in wp.pattern.split(":"))
        out += [f"# {wp.pattern}: in each group of {m} consecutive inputs of a row keep the {n} largest scores;",
                f"# a row's last, shorter group of r inputs keeps ceil(r * {n} / {m}); ties: the earlier is pruned",
                "for name, s in scores.items():",
                "    mask = torch.ones_like(s, dtype=torch.bool)",
                f"    for start in range(0, s.shape[1], {m}):",
                f"        group = s[:, start:start + {m}]",
                f"        prune_k = group.shape[1] - -(-group.shape[1] * {n} // {m})",
                "        order = torch.sort(group, dim=1, stable=True).indices[:, :prune_k]",
                "        mask[:, start:start + group.shape[1]].scatter_(1, order, False)",
                "    masks[name] = mask"]
    elif wp.scope == "global":
        out += ["flat = torch.cat([s.reshape(-1) for s in scores.values()])",
                f"k = round({float(cast(float, wp.sparsity))!r} * flat.numel())",  # global: one float
                "keep = torch.ones_like(flat, dtype=torch.bool)",
                "keep[torch.sort(flat, stable=True).indices[:k]] = False",
                "offset = 0",
                "for name, s in scores.items():",
                "    masks[name] = keep[offset:offset + s.numel()].view_as(s)",
                "    offset += s.numel()"]
    else:
        amounts = expand(wp.sparsity, layers)
        out += [f"sparsity = {{{', '.join(f'{chr(34)}{k}{chr(34)}: {float(v)!r}' for k, v in amounts.items())}}}",
                "for name, amount in sparsity.items():  # each output row loses round(amount * inputs) weights",
                "    s = scores[name]",
                "    k = round(amount * s.shape[1])",
                "    order = torch.sort(s, dim=1, stable=True).indices[:, :k]",
                "    masks[name] = torch.ones_like(s, dtype=torch.bool).scatter_(1, order, False)"]
    out += ["", "for name, mask in masks.items():",
            '    prune.custom_from_mask(layers[name], "weight", mask.view_as(layers[name].weight))',
            '    prune.remove(layers[name], "weight")  # permanent: plain weights with zeros']
    return out


def lottery_code(rounds: int, rewind_epoch: int, targets: dict[str, float], global_scope: bool = False) -> str:
    """The lottery ticket in plain PyTorch: rounds of magnitude pruning toward {layer: target sparsity}, each
    rewinding the kept weights (`global_scope`: one ranking over all layers, as prune.global_unstructured)."""
    if global_scope:
        target = next(iter(targets.values()), 0.0)
        prune_lines = f"""\
    share = 1 - (1 - {target!r}) ** (r / {rounds})   # the same share of what is left, each round
    scored = copy.deepcopy(trained)           # pruned weights are 0: ranked first, they stay pruned
    prune.global_unstructured([(scored.get_submodule(n), "weight") for n in names],
                              pruning_method=prune.L1Unstructured, amount=share)
    for name in names:
        prune.custom_from_mask(ticket.get_submodule(name), "weight", mask=scored.get_submodule(name).weight_mask)"""
    else:
        prune_lines = f"""\
    for name, target in {targets!r}.items():
        share = 1 - (1 - target) ** (r / {rounds})     # the same share of what is left, each round
        scored = copy.deepcopy(trained.get_submodule(name))  # pruned weights are 0: ranked first, they stay pruned
        prune.l1_unstructured(scored, "weight", amount=share)
        prune.custom_from_mask(ticket.get_submodule(name), "weight", mask=scored.weight_mask)"""
    return f'''\
# The lottery ticket (Frankle & Carbin 2019). theta_k: the dense run's weights after epoch {rewind_epoch}, saved while
# it trained (epoch 0: before the first step):  theta_k = copy.deepcopy(model.state_dict())
import copy

import torch.nn.utils.prune as prune

names = {list(targets)!r}
trained = model                               # the dense network, trained
for r in range(1, {rounds} + 1):
    ticket = copy.deepcopy(model)
    ticket.load_state_dict(theta_k)           # rewind every weight and bias
{prune_lines}
    train(ticket)                             # your training loop: weight = weight_orig * mask holds the zeros
    for name in names:
        prune.remove(ticket.get_submodule(name), "weight")
    trained = ticket                          # its weights decide the next round's mask

# The control: the same masks on a fresh initialisation (another seed), trained the same way.'''


def structured_lines(wp: WeightPruningConfig, hidden: list[str]) -> list[str]:
    """The torch.nn.utils.prune lines of a structured setting on the hidden layers."""
    st = wp.structured
    amounts = expand(st.amount, hidden)
    out = []
    if st.method == "apoz":
        out += ["# APoZ: remove the units whose activations are most often zero on data (Hu et al. 2016);",
                "# torch.nn.utils.prune has no APoZ method: rank by your APoZ scores and pass the mask yourself:"]
        out += [f"# prune.custom_from_mask({_module(n)}, \"weight\", mask=rows_to_keep_{n}[:, None].expand_as("
                f"{_module(n)}.weight))" for n in amounts]
    else:
        norm = 1 if st.method == "l1" else 2
        out += [f'prune.ln_structured({_module(n)}, name="weight", amount={float(a)!r}, n={norm}, dim=0)'
                for n, a in amounts.items()]
    out += ["", "# a removed unit also loses its bias, so it outputs exactly 0:"]
    out += [f"with torch.no_grad():\n    {_module(n)}.bias[~{_module(n)}.weight_mask.flatten(1).any(1)] = 0"
            for n in amounts if st.method != "apoz"]
    out += [f'prune.remove({_module(n)}, "weight")' for n in amounts if st.method != "apoz"]
    return out


def freeze_code(frozen: list[str], lr: float, optimizer: str) -> str:
    """Freezing in plain PyTorch: requires_grad=False, and an optimizer over the trainable parameters only."""
    opt = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}[optimizer]
    lines = [f"for p in {_module(n)}.parameters():\n    p.requires_grad_(False)" for n in frozen]
    if not lines:
        lines = ["# no layer is frozen: every parameter trains"]
    lines += ["", "trainable = [p for p in model.parameters() if p.requires_grad]",
              f"optimizer = torch.optim.{opt}(trainable, lr={lr!r})"]
    return "\n".join(lines)


def masked_training_code() -> str:
    """The masked fine-tuning step in plain PyTorch, as explorer.engine.training does it."""
    return '''\
# masks: {"fc1": bool tensor shaped like model.fc1.weight, ...}; False = pruned
layers = {name: model.get_submodule(name) for name in masks}
with torch.no_grad():
    for name, m in layers.items():
        m.weight.mul_(masks[name]).add_(0.0)    # pruned weights become exactly +0.0 (not -0.0), once

for x, y in loader:
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    for name, m in layers.items():
        m.weight.grad.mul_(masks[name])         # no gradient reaches a pruned weight
    optimizer.step()                            # momentum / Adam state stays 0 there, so the weight stays 0

# when the masks change (iterative, AGP), also clear the optimizer's memory of pruned entries:
for name, m in layers.items():
    for buf in optimizer.state[m.weight].values():
        if torch.is_tensor(buf) and buf.shape == m.weight.shape:
            buf.mul_(masks[name])'''


_FORCED_THRESHOLD = '''\
def forced_threshold(t):
    """After the nonlinearity: |a| < t becomes 0. Multiplying by the mask also zeroes the gradient there."""
    def hook(module, inputs, out):
        return out * (out.abs() >= t)
    return hook
'''


def activation_code(thresholds: dict, targets: dict | None = None) -> str:
    """A forced-threshold ReLU as a forward hook on the nonlinearity after each layer (the zoo names it act{i})."""
    lines = [_FORCED_THRESHOLD, "handles = ["]
    for n, t in thresholds.items():
        if t > 0:
            note = f"; reaches {targets[n]:.0%} zeros on the test set" if targets and n in targets else ""
            index = "".join(ch for ch in n if ch.isdigit())
            lines.append(f"    model.act{index}.register_forward_hook(forced_threshold({t:.4f})),  # after {n}{note}")
    lines += ["]", "# ... evaluate or train: gradients through zeroed activations are 0 ...", "for h in handles:",
              "    h.remove()  # the model is exactly as it was"]
    return "\n".join(lines)
