"""Loading weights into a network: one strict path (load_into) for every model family."""
from __future__ import annotations

import onnx
import pytest
import torch

from realtime.models import get_spec, load_parser
from realtime.models.checkpoint import load_into
from realtime.models.fixture_weights import fixture_state
from realtime.models.m2fp import m2fp_net
from realtime.models.schp import schp_net
from realtime.models.uniparser import uniparser_net
from realtime.weights import WeightsError


@pytest.mark.parametrize("model, wrapped, fresh_net, renamed", [
    ("m2fp-lip", lambda state: {"model": state}, m2fp_net, "backbone.stem.conv1.weight"),
    ("schp-lip", lambda state: {"state_dict": state}, schp_net, "conv1.weight"),
    ("uniparser-cihp", lambda state: {"meta": {}, "state_dict": state}, uniparser_net, "backbone.conv1.weight"),
])
def test_a_checkpoint_that_does_not_fit_is_one_line_naming_the_file_and_keys(
        tmp_path, model, wrapped, fresh_net, renamed):
    state = fixture_state(fresh_net(get_spec(model)))
    state["renamed." + renamed] = state.pop(renamed)
    path = tmp_path / "weights.pth"
    torch.save(wrapped(state), path)  # in the layout the family's checkpoints have, read back by its own reader
    with pytest.raises(WeightsError) as error:
        load_parser(model, device="cpu", weights=path)
    message = str(error.value)
    assert len(message.splitlines()) == 1 and message.startswith(str(path))
    assert f"1 missing keys ({renamed}), 1 unexpected keys (renamed.{renamed})" in message


def test_a_bodypix_graph_that_does_not_fit_is_one_line_naming_the_file_and_keys(tmp_path, weights_dir):
    graph = onnx.load(str(weights_dir / "bodypix-mobilenetv1-050-stride16.onnx"))
    for node in graph.graph.node:  # the segments head's output renamed
        node.output[:] = ["renamed" if name == "segments" else name for name in node.output]
    next(output for output in graph.graph.output if output.name == "segments").name = "renamed"
    path = tmp_path / "bodypix.onnx"
    onnx.save(graph, str(path))
    with pytest.raises(WeightsError) as error:
        load_parser("bodypix", device="cpu", weights=path)
    message = str(error.value)
    assert len(message.splitlines()) == 1 and message.startswith(str(path))
    assert ("2 missing keys (heads.segments.weight, heads.segments.bias), "
            "2 unexpected keys (heads.renamed.weight, heads.renamed.bias)") in message


def test_load_into_reports_counts_and_the_first_few_names():
    net = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(5)])
    with pytest.raises(WeightsError, match=r"^model\.pt does not fit Sequential: 9 missing keys "
                                           r"\(0\.bias, 1\.weight, 1\.bias, …\), 0 unexpected keys, "
                                           r"1 wrongly shaped keys \(0\.weight\)$"):
        load_into(net, {"0.weight": torch.zeros(3, 3)}, source="model.pt")
