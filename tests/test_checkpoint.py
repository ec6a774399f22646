"""Loading weights into a network: one strict path (load_into) for every model family."""
from __future__ import annotations

import pytest
import torch

from realtime.models import get_spec, load_parser
from realtime.models.bodypix import BodyPixNet
from realtime.models.checkpoint import load_into
from realtime.models.fixture_weights import fixture_state
from realtime.models.m2fp import m2fp_net
from realtime.models.pixel_norm import PixelNorm
from realtime.models.schp import schp_net
from realtime.models.uniparser import uniparser_net
from realtime.weights import WeightsError


def _bodypix_net(spec) -> BodyPixNet:
    return BodyPixNet(output_stride=spec.output_stride, pixel_norm=PixelNorm.from_spec(spec))


@pytest.mark.parametrize("model, reader, wrapped, fresh_net, renamed", [
    ("bodypix", "realtime.models.bodypix.state_dict_from_onnx", lambda state: state, _bodypix_net,
     "heads.segments.bias"),
    ("m2fp-lip", "realtime.models.m2fp.load_checkpoint", lambda state: {"model": state}, m2fp_net,
     "backbone.stem.conv1.weight"),
    ("schp-lip", "realtime.models.schp.load_checkpoint", lambda state: {"state_dict": state}, schp_net,
     "conv1.weight"),
    ("uniparser-cihp", "realtime.models.uniparser.load_checkpoint", lambda state: {"meta": {}, "state_dict": state},
     uniparser_net, "backbone.conv1.weight"),
])
def test_a_checkpoint_that_does_not_fit_is_one_line_naming_the_file_and_keys(
        tmp_path, monkeypatch, model, reader, wrapped, fresh_net, renamed):
    state = fixture_state(fresh_net(get_spec(model)))
    state["renamed." + renamed] = state.pop(renamed)
    path = tmp_path / "weights.bin"
    path.write_bytes(b"")
    monkeypatch.setattr(reader, lambda *args: wrapped(state))
    with pytest.raises(WeightsError) as error:
        load_parser(model, device="cpu", weights=path)
    message = str(error.value)
    assert len(message.splitlines()) == 1 and message.startswith(str(path))
    assert f"1 missing keys ({renamed}), 1 unexpected keys (renamed.{renamed})" in message


def test_load_into_reports_counts_and_the_first_few_names():
    net = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(5)])
    with pytest.raises(WeightsError, match=r"^model\.pt does not fit Sequential: 9 missing keys "
                                           r"\(0\.bias, 1\.weight, 1\.bias, …\), 0 unexpected keys, "
                                           r"1 wrongly shaped keys \(0\.weight\)$"):
        load_into(net, {"0.weight": torch.zeros(3, 3)}, source="model.pt")
