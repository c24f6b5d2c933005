"""The papers' comparisons: each note is read from the count and the publication, never typed.

Published values: ../shared/reference/published-numbers.md (the MobileNet V1 paper's Tables 2, 4
and 7, the V2 paper's Table 4). Counted values: archprof's counts of the same models, pinned by
tests/test_architectures.py and the committed reports.
"""

from __future__ import annotations

import pytest

from archprof.analysis import papers
from archprof.analysis import published as pub
from archprof.analysis.papers import Against, at_precision, printed, truncation_notes

V1_224 = 568_740_352  # 1.0 MobileNet-224: the V1 paper's Table 7 prints 569 M (rounded)
V1_160 = 290_675_200  # 1.0 MobileNet-160: Table 7 prints 290 M (truncated)


def test_a_count_cut_at_the_printed_digit_is_truncated_and_one_rounded_to_it_matches():
    rounded, cut = Against(V1_224, pub.V1_RESOLUTION[224]), Against(V1_160, pub.V1_RESOLUTION[160])
    assert (rounded.departs, rounded.truncated) == (False, False)
    assert (cut.departs, cut.truncated) == (True, True)
    assert cut.difference == 675_200


def test_truncation_notes_name_the_rows_the_same_table_rounds():
    notes = truncation_notes([("1.0 at 224", Against(V1_224, pub.V1_RESOLUTION[224])),
                              ("1.0 at 160", Against(V1_160, pub.V1_RESOLUTION[160])),
                              ("off", Against(300_000_000, pub.V1_RESOLUTION[160]))])
    assert notes == ["", "printed 290 M for 290.68 M: truncated, where 1.0 at 224 is rounded",
                     "differs beyond the printed rounding"]
    only_cut = truncation_notes([("1.0 at 160", Against(V1_160, pub.V1_RESOLUTION[160]))])
    assert only_cut == ["printed 290 M for 290.68 M: truncated, not rounded"]


def test_two_swapped_digits_are_told_from_any_other_departure():
    conv3x3_macs, _ = pub.V1_LAYER_TYPES["conv 3x3"]  # printed 1.19 %
    assert Against(1.9056, conv3x3_macs).digits_swapped  # 1.91 %
    assert not Against(1.95, conv3x3_macs).digits_swapped
    assert not Against(1.19, conv3x3_macs).digits_swapped  # equal is no swap


@pytest.mark.parametrize(("value", "step", "text"), [
    (3_504_872, 1e4, "3.50 M"), (3_663_761_408, 1e6, "3.664 G"), (569e6, 1e6, "569 M"), (41e6, 1e6, "41 M"), (999, 1, "999"),
])
def test_a_value_is_written_to_the_digit_asked(value, step, text):
    assert at_precision(value, step) == text


def test_a_published_value_is_written_as_printed():
    params, macs = pub.V2_TABLE4["MobileNetV2"]
    assert (printed(params), printed(macs)) == ("3.4 M", "300 M")


def test_the_v1_note_follows_the_v1_papers_own_table(monkeypatch):
    ps = papers.Profiles()
    rows = {r.model: r for r in papers.v2_table4(ps).rows}
    assert rows["MobileNetV1"].note == ("the V2 paper prints 575 M mult-adds for V1; the V1 paper's own Table 4 "
                                        "prints 569 M, which the count matches")
    assert rows["MobileNetV2"].note == ("printed 3.4 M parameters and 300 M mult-adds; counted 3.50 M (3.47 M without "
                                        "BN's affine terms) and 300.8 M")
    # Were the V1 paper's own Table 4 to print what the V2 paper does, the note could not lean on it.
    monkeypatch.setitem(papers.OWN_PAPER, "MobileNetV1", ("V1", pub.V2_TABLE4["MobileNetV1"]))
    rows = {r.model: r for r in papers.v2_table4(ps).rows}
    assert rows["MobileNetV1"].note == "printed 4.2 M and 575 M; counted 4.2 M and 569 M"


def test_the_blocks_note_reads_its_coefficients_and_channels_from_the_blocks():
    compared = papers.bottleneck_against_inverted_residual()
    # ResNet paper, figure 5: C*b + 9*b^2 + b*C' with b = C' = C / 4 is (1/4 + 9/16 + 1/4) C^2 per position
    assert compared.bottleneck_per_c2 == 17 / 16
    # MobileNet V2 paper, section 3.3, at d' = d'' = 2048, t = 6: 6 * (2048 + 9 + 2048) / 2048 per position
    assert compared.inverted_residual_per_c2 == pytest.approx(6 * (2048 + 9 + 2048) / 2048, rel=1e-12)
    # V2 paper's Table 2: the t = 6 rows output 24 to 320 channels; ResNet paper's Table 1: 256 to 2048
    assert compared.inverted_residual_channels == (24, 320)
    assert compared.bottleneck_channels == (256, 2048)
