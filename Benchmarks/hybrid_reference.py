"""The CNN+LSTM hybrid model in PyTorch, named so that Shoal's weights load with
load_state_dict(strict=True), and a check that both give the same outputs and gradients.

Usage: python3 Benchmarks/hybrid_reference.py BIN_DIR [--batch B] [--seed S]
Runs `trading model init`, loads the weights here, draws an input and targets, runs
`trading model forward --targets`, and compares classification, regression, fused features,
the loss and every parameter's gradient (max abs difference; exits 1 above 1e-4).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


class HybridModel(nn.Module):
    def __init__(self, features=32, conv_channels=32, kernels=(3, 5, 7, 11), heads=8, lstm_hidden=64, lstm_layers=3,
                 dropout=0.3, fusion=256, classes=3):
        super().__init__()
        self.conv_layers = nn.ModuleList([nn.Conv1d(features, conv_channels, k, padding=k // 2) for k in kernels])
        width = conv_channels * len(kernels)
        self.attention_cnn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm_cnn = nn.LayerNorm(width)
        self.lstm = nn.LSTM(width, lstm_hidden, num_layers=lstm_layers, bidirectional=True, dropout=dropout, batch_first=True)
        self.attention_lstm = nn.MultiheadAttention(2 * lstm_hidden, heads, batch_first=True)
        self.norm_lstm = nn.LayerNorm(2 * lstm_hidden)
        self.fusion_attention = nn.MultiheadAttention(2 * lstm_hidden, heads, batch_first=True)
        self.fusion_proj = nn.Linear(2 * lstm_hidden, fusion)
        self.fusion_norm = nn.LayerNorm(fusion)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(fusion, classes)
        self.regressor = nn.Linear(fusion, 1)

    def forward(self, x):
        cnn = torch.cat([F.relu(conv(x)) for conv in self.conv_layers], dim=1).transpose(1, 2)
        attended, _ = self.attention_cnn(cnn, cnn, cnn, need_weights=False)
        cnn_features = self.norm_cnn(cnn + attended)
        recurrent, _ = self.lstm(cnn_features)
        attended, _ = self.attention_lstm(recurrent, recurrent, recurrent, need_weights=False)
        lstm_features = self.norm_lstm(recurrent + attended)
        cross, _ = self.fusion_attention(lstm_features, cnn_features, cnn_features, need_weights=False)
        fused = self.fusion_norm(self.fusion_proj(lstm_features + cross))
        last = self.dropout(fused)[:, -1, :]
        return self.classifier(last), self.regressor(last), fused


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin_dir")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    trading = os.path.join(arguments.bin_dir, "trading")
    folder = tempfile.mkdtemp(prefix="shoal-parity-")
    weights, inputs, targets, outputs = (os.path.join(folder, name) for name in ["w.safetensors", "x.safetensors", "t.safetensors", "y.safetensors"])
    subprocess.run([trading, "model", "init", "--seed", str(arguments.seed), "--out", weights], check=True)
    model = HybridModel()
    model.load_state_dict(load_file(weights), strict=True)
    model.eval()
    generator = torch.Generator().manual_seed(arguments.seed)
    x = torch.randn(arguments.batch, 32, 64, generator=generator)
    labels = torch.randint(0, 3, (arguments.batch,), generator=generator)
    returns = 0.01 * torch.randn(arguments.batch, 1, generator=generator)
    save_file({"input": x}, inputs)
    save_file({"labels": labels.float(), "returns": returns}, targets)
    subprocess.run([trading, "model", "forward", "--weights", weights, "--input", inputs, "--targets", targets, "--out", outputs], check=True)
    shoal = load_file(outputs)
    logits, regression, fused = model(x)
    loss = F.cross_entropy(logits, labels) + 0.5 * F.mse_loss(regression, returns)
    model.zero_grad()
    loss.backward()
    rows = [("classification", logits), ("regression", regression), ("fused_features", fused), ("loss", loss)]
    rows += [(name, parameter.grad) for name, parameter in model.named_parameters()]
    worst = 0.0
    for name, reference in rows:
        difference = (shoal[name] - reference.detach().reshape(shoal[name].shape)).abs().max().item()
        worst = max(worst, difference)
        if name in ("classification", "regression", "fused_features", "loss") or difference > 1e-5:
            print(f"{name:40} max abs difference {difference:.2e}")
    print(f"{len(rows)} tensors compared (outputs, loss and {len(rows) - 4} gradients); largest difference {worst:.2e}"
          f" ({'within' if worst <= 1e-4 else 'OUTSIDE'} 1e-4); PyTorch {torch.__version__}")
    sys.exit(0 if worst <= 1e-4 else 1)


if __name__ == "__main__":
    main()
