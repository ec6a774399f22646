# PartSight: `make demo` parses a real clip into an annotated MP4; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MEDIA_DIR ?= $(or $(PARTSIGHT_MEDIA_DIR),../shared/media)
WEIGHTS_DIR ?= $(or $(PARTSIGHT_WEIGHTS_DIR),../shared/weights)
DEMO_CLIP ?= $(MEDIA_DIR)/pose2sim-single-cam01.mp4
export PARTSIGHT_WEIGHTS_DIR := $(abspath $(WEIGHTS_DIR))
export PARTSIGHT_MEDIA_DIR := $(abspath $(MEDIA_DIR))

.PHONY: install demo test test-mediapipe bench gpu-bundle gpu-check clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,cluster,serve]"
	touch $@

install: $(VENV)/.installed

demo: install
	@if [ ! -f "$(DEMO_CLIP)" ]; then \
	  echo "No demo clip at $(DEMO_CLIP)."; \
	  echo "Point PARTSIGHT_MEDIA_DIR at a folder with pose2sim-single-cam01.mp4, or run any video or webcam:"; \
	  echo "  $(PY) main.py process path/to/video.mp4 -o out/annotated.mp4"; \
	  echo "  $(PY) main.py process 0 -o out/webcam.mp4 --frames 300"; \
	  exit 1; fi
	$(PY) main.py process "$(DEMO_CLIP)" -o out/demo.mp4 --metrics out/demo.jsonl
	@echo "Open out/demo.mp4 to see the result."

# Two pytest-xdist workers, a test file each at a time (its module fixtures, e.g. a Ray cluster,
# stay in one process; the files that start Ray share one worker, tests/conftest.py): one worker
# leaves a quarter of two cores idle while it starts processes, servers and clusters.
TEST_WORKERS ?= 2

test: install
	$(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The mediapipe wheel's BlazePose (the `mediapipe` extra, a reference for the PyTorch networks) in a venv of its own: mediapipe
# 0.10.14 needs protobuf 4 (so onnx<1.18) and brings opencv-contrib-python, which shares the cv2
# folder with opencv-python, so opencv-python is removed and contrib reinstalled over it.
MP_VENV ?= .venv-mediapipe
MP_PY := $(MP_VENV)/bin/python

$(MP_VENV)/.installed: pyproject.toml
	test -x $(MP_PY) || $(PYTHON) -m venv $(MP_VENV)
	$(MP_PY) -m pip install -q --upgrade pip
	$(MP_PY) -m pip install -q torch==2.13.0
	$(MP_PY) -m pip install -q -e ".[dev,mediapipe]"
	$(MP_PY) -m pip uninstall -q -y opencv-python
	$(MP_PY) -m pip install -q --force-reinstall --no-deps opencv-contrib-python
	touch $@

# Only the tests marked `mediapipe` (the rest run in `make test`).
test-mediapipe: $(MP_VENV)/.installed
	$(MP_PY) -c "import mediapipe"  # else every test it runs would be skipped
	QT_QPA_PLATFORM=offscreen $(MP_PY) -m pytest -q -m mediapipe tests/test_fitness_clips.py tests/test_dtype.py

bench: install
	$(PY) main.py bench "$(DEMO_CLIP)" --size 640x480 --frames 100
	$(PY) main.py bench-parser --frame "$(DEMO_CLIP)"
	$(PY) main.py bench-pose "$(DEMO_CLIP)"

# The prepared GPU check (tests/gpu_check.py): every CUDA test and the GPU benchmarks, one JSON, in
# under 8 minutes. It makes $(GPU_VENV) with a CUDA build of torch (the machine's own when its
# python3 has one, else torch==2.13.0 from PyPI, whose Linux wheel is the CUDA build). On a machine
# without a package registry, `make gpu-bundle` here first puts the weights, the clip, the M2FP
# fixture image and the missing engine wheels (Python 3.12) in $(GPU_BUNDLE); carry that folder
# and run `make gpu-check GPU_BUNDLE=.gpu-bundle` (or `python3 tests/gpu_check.py --bundle .gpu-bundle`).
GPU_VENV ?= .venv-gpu
GPU_BUNDLE ?=
GPU_WHEELS_PYTHON ?= 3.12
FIXTURES_DIR ?= $(or $(PARTSIGHT_FIXTURES_DIR),$(dir $(MEDIA_DIR))fixtures)

gpu-check:
	$(PYTHON) tests/gpu_check.py --venv $(GPU_VENV) $(if $(GPU_BUNDLE),--bundle $(GPU_BUNDLE))

gpu-bundle:
	mkdir -p .gpu-bundle/weights .gpu-bundle/media .gpu-bundle/fixtures/m2fp_lip .gpu-bundle/wheels
	cp $(WEIGHTS_DIR)/bodypix-mobilenetv1-050-stride16.onnx $(WEIGHTS_DIR)/mediapipe-pose_detection.tflite \
	  $(WEIGHTS_DIR)/mediapipe-pose_landmark_full.tflite $(WEIGHTS_DIR)/mediapipe-selfie_segmentation.tflite .gpu-bundle/weights/
	cp $(MEDIA_DIR)/pose2sim-single-cam01.mp4 .gpu-bundle/media/
	cp $(FIXTURES_DIR)/m2fp_lip/input_image.png .gpu-bundle/fixtures/m2fp_lip/
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version $(GPU_WHEELS_PYTHON) --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d .gpu-bundle/wheels av platformdirs tflite
	du -sh .gpu-bundle

clean:
	rm -rf out .pytest_cache

# The real window under a virtual X server: runs the demo clip and saves out/window.png.
# Needs xvfb-run (Debian/Ubuntu: apt-get install -y xvfb libxkbcommon-x11-0 libxcb-cursor0
# libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0
# libxcb-xinerama0 libxcb-xkb1).
.PHONY: screenshot
screenshot: install
	@command -v xvfb-run >/dev/null || { echo "make screenshot needs xvfb-run (apt-get install -y xvfb)"; exit 1; }
	mkdir -p out
	XDG_CONFIG_HOME="$$(mktemp -d)" xvfb-run -a -s "-screen 0 1600x1000x24" \
	  $(PY) main.py gui --source "$(DEMO_CLIP)" --frames 8 --screenshot out/window.png
