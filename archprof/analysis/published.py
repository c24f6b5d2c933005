"""The published numbers archprof is checked against, each with the precision it was printed at.

Sources: ../shared/reference/published-numbers.md (the ResNet, MobileNet V1 and V2 papers and
torchvision's weights metadata). A counted value "matches" a published one when it rounds to it:
within half a unit of the last printed digit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    value: float
    step: float  # one unit of the last printed digit (569 M: 1e6; 4.2 M: 1e5; 94.86 %: 0.01)
    source: str

    def matches(self, counted: float) -> bool:
        return abs(counted - self.value) <= self.step / 2 + 1e-9 * max(1.0, abs(self.value))


def mega(value: float, step: float = 1.0, source: str = "") -> Published:
    return Published(value * 1e6, step * 1e6, source)


def giga(value: float, step: float = 0.1, source: str = "") -> Published:
    return Published(value * 1e9, step * 1e9, source)


V1 = "MobileNet V1 paper"
V2 = "MobileNet V2 paper"

# MobileNet V1, Table 6 (width at 224) and Table 7 (resolution at width 1.0): mult-adds, params.
V1_WIDTH = {
    1.0: (mega(569, source=f"{V1} Table 6"), mega(4.2, 0.1, f"{V1} Table 6")),
    0.75: (mega(325, source=f"{V1} Table 6"), mega(2.6, 0.1, f"{V1} Table 6")),
    0.5: (mega(149, source=f"{V1} Table 6"), mega(1.3, 0.1, f"{V1} Table 6")),
    0.25: (mega(41, source=f"{V1} Table 6"), mega(0.5, 0.1, f"{V1} Table 6")),
}
V1_RESOLUTION = {
    224: mega(569, source=f"{V1} Table 7"),
    192: mega(418, source=f"{V1} Table 7"),
    160: mega(290, source=f"{V1} Table 7"),
    128: mega(186, source=f"{V1} Table 7"),
}
# Table 4 (depthwise separable against full convolutions): 1.0 MobileNet-224's (params, mult-adds).
V1_TABLE4 = (mega(4.2, 0.1, f"{V1} Table 4"), mega(569, source=f"{V1} Table 4"))


def percent(value: float, source: str) -> Published:
    return Published(value, 0.01, source)


# Table 2: (% mult-adds, % parameters) per layer type of 1.0 MobileNet-224, printed to 0.01 %.
V1_LAYER_TYPES = {
    t: (percent(macs, f"{V1} Table 2"), percent(params, f"{V1} Table 2"))
    for t, macs, params in (("conv 1x1", 94.86, 74.59), ("depthwise 3x3", 3.06, 1.06), ("conv 3x3", 1.19, 0.02),
                            ("fully connected", 0.18, 24.33))
}
# MobileNet V2, Table 4: (params, mult-adds).
V2_TABLE4 = {
    "MobileNetV1": (mega(4.2, 0.1, f"{V2} Table 4"), mega(575, source=f"{V2} Table 4")),
    "MobileNetV2": (mega(3.4, 0.1, f"{V2} Table 4"), mega(300, source=f"{V2} Table 4")),
    "MobileNetV2 (1.4)": (mega(6.9, 0.1, f"{V2} Table 4"), mega(585, source=f"{V2} Table 4")),
}
# MobileNet V2, Table 3: the largest tensor to materialize, 16-bit activations (its "max" row).
V2_TABLE3_MAX = {"MobileNetV1": Published(1600e3, 100e3, f"{V2} Table 3"), "MobileNetV2": Published(400e3, 100e3, f"{V2} Table 3")}
# ResNet paper, Table 1: FLOPs (multiply-adds).
RESNET_TABLE1 = {d: giga(v, source="ResNet paper Table 1") for d, v in ((18, 1.8), (34, 3.6), (50, 3.8), (101, 7.6), (152, 11.3))}
# torchvision weights metadata: (num_params, GFLOPS that are GMACs).
TORCHVISION = {
    "resnet50": (Published(25_557_032, 1, "torchvision"), giga(4.089, 0.001, "torchvision")),
    "resnet101": (Published(44_549_160, 1, "torchvision"), giga(7.801, 0.001, "torchvision")),
    "resnet152": (Published(60_192_808, 1, "torchvision"), giga(11.514, 0.001, "torchvision")),
    "mobilenet_v2": (Published(3_504_872, 1, "torchvision"), giga(0.301, 0.001, "torchvision")),
}
# torchvision weights metadata of the detectors (COCO_V1): (num_params, _ops). The _ops are GMACs of
# convolutions and matmuls at a 1 x 3 x 800 x 800 image, which the detection transform leaves as it is.
TORCHVISION_DETECTION = {
    "fcos_resnet50_fpn": (Published(32_269_600, 1, "torchvision"), giga(128.207, 0.001, "torchvision")),
    "retinanet_resnet50_fpn": (Published(34_014_999, 1, "torchvision"), giga(151.54, 0.01, "torchvision")),
}
