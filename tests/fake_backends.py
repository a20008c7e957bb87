"""Backends that fail on purpose, to test how failures are recorded."""

from backends.stbp.backend import STBPBackend
from tasks.errors import DeviceOutOfMemory


class NaNAfterThreeSteps(STBPBackend):
    framework = "nan"

    def train_step(self, batch):
        loss = super().train_step(batch)
        self.steps = getattr(self, "steps", 0) + 1
        return float("nan") if self.steps >= 3 else loss


class RaisesInTraining(STBPBackend):
    framework = "broken"

    def train_step(self, batch):
        raise RuntimeError("kernel exploded\nsecond line of detail")


class OutOfMemory(STBPBackend):
    framework = "oom"

    def train_step(self, batch):
        raise DeviceOutOfMemory("CUDA out of memory. Tried to allocate 2.00 GiB")


class HostOutOfMemory(STBPBackend):
    """PyTorch's CPU allocator failing (what ``ulimit -v`` or a full machine gives)."""

    framework = "hostoom"
    text = ("DefaultCPUAllocator: can't allocate memory: you tried to allocate 3600000000 bytes. "
            "Error code 12 (Cannot allocate memory)")

    def train_step(self, batch):
        raise RuntimeError(self.text)

    def forward_backward(self, batch):
        raise RuntimeError(self.text)


class BadAlloc(HostOutOfMemory):
    framework = "badalloc"
    text = "std::bad_alloc"
