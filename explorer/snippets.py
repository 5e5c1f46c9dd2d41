"""The plain-PyTorch code equivalent to a setting, shown on each page so a student can take the idea home."""
from __future__ import annotations

from .config import WeightPruningConfig
from .layers import expand

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
    if wp.structured.amount is not None:
        return "\n".join(lines + structured_lines(wp, layers[:-1]))
    if not wp.is_active:
        return "\n".join(lines + ["# nothing is pruned: every weight is kept"])
    if wp.sparsity is not None:
        if wp.scope == "global":
            lines += ["params = [", *[f"    ({_module(n)}, \"weight\")," for n in layers], "]",
                      f"prune.global_unstructured(params, pruning_method=prune.L1Unstructured, "
                      f"amount={float(wp.sparsity)!r})"]
        else:
            amounts = expand(wp.sparsity, layers)
            lines += [f'prune.l1_unstructured({_module(n)}, name="weight", amount={float(a)!r})'
                      for n, a in amounts.items()]
    else:
        thresholds = expand(wp.threshold, layers)
        lines[1:1] = ["", _THRESHOLD_METHOD.rstrip("\n"), ""]
        lines += [f'ThresholdPruning.apply({_module(n)}, "weight", threshold={float(t)!r})'
                  for n, t in thresholds.items()]
    pruned = [n for n in layers if not isinstance(wp.sparsity or wp.threshold, dict)
              or n in (wp.sparsity or wp.threshold)]
    lines += ["", "# make it permanent: plain weights with zeros, no weight_orig / weight_mask left",
              *[f'prune.remove({_module(n)}, "weight")' for n in pruned]]
    return "\n".join(lines)


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
    """The masked fine-tuning step in plain PyTorch, as explorer.training does it."""
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
