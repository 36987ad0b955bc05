"""The allowed values and limits of a run config's settings (torch-free: the CLI's bad-input path reads them)."""

from __future__ import annotations

TASKS = ("sum", "product")
LOSSES = ("mse", "log", "classify")
ACTIVATIONS = ("tanh", "relu")
OPTIMIZERS = ("rmsprop", "adam")
SOURCES = ("mnist5k", "mnist")
DEVICES = ("auto", "cpu", "cuda")
BALANCES = ("none", "target")  # data.balance: training targets as drawn | uniform per length
CLASS_WEIGHTS = ("none", "inverse_frequency")  # train.class_weight
PRECISIONS = ("fp32", "bf16", "auto")  # train.precision: auto = bf16 autocast where the device runs it fast
OUTPUTS = ("last", "every_step")  # model.outputs: the value after the last digit | after every digit
MAX_EPOCHS = 100_000  # train.epochs beyond this is a typo, not a run that would ever end
HEADS = ("dense", "nau", "nmu", "exact")  # model.head: a linear layer on the GRU | an arithmetic unit | exact
BOTTLENECKS = ("none", "digits")  # model.bottleneck: CNN features as they are | a 10-way softmax per image
HEAD_LOSSES = ("mse", "log")  # the losses an arithmetic head (a value, not classes) supports
SPARSITY_SHAPES = ("squared", "linear")  # train.sparsity_shape: W^2 (1 - W)^2 | the paper's min(|W|, |1 - W|)
ACCUMULATORS = ("learned", "solved")  # model.accumulator: the unit's weights learned | fixed at the solution
ALL_DIGITS = tuple(range(10))  # data.digits default: sequences draw from every digit
MAX_TUPLE_LEN = 6  # balance / holdout / class_weight enumerate the 10^L digit tuples of every training length
MAX_SEED = 2**62  # seeds are 0 .. 2^62 - 1: torch.manual_seed takes them, and split_seed + 1,000,003 too
MAX_CLASSIFY_PRODUCT_LEN = 30  # 246,017 classes, enumerated in ~5 s; the count grows ~ length^4, the time ~ length^5
