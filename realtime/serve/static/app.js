// The PartSight page. It talks only to this server's /v1 API: an image goes to /v1/parse and its
// label map is coloured here (so parts can be toggled and the opacity changed without asking the
// server again); a video becomes a job whose progress is polled, then its plain video plays with
// the label map of the frame on screen coloured the same way on a canvas over it; the camera
// streams JPEG frames over the /v1/live WebSocket. Nothing is loaded from anywhere else.
"use strict";

const $ = (id) => document.getElementById(id);
const LIVE_FPS = 12;            // frames a second the camera sends; the server keeps only the newest
const LIVE_KEPT_FRAMES = 30;    // sent frames kept to draw their results on
const POLL_MS = 1000;
const LABELS_AHEAD = 24;        // a playing video's label maps fetched ahead of the frame on screen
const LABELS_KEPT = 96;         // label maps kept around it

const state = {
  token: null,
  models: new Map(),  // name -> /v1/models entry
  vocab: null,        // /v1/exercises
  view: null,         // what the overlay canvas shows: {base, labels, width, height, model, people, frameSize}
  visible: [],        // per class id: drawn or not
  layer: null,        // a canvas for the coloured parts, drawn over the base
  track: null,        // the job video the overlay follows (followVideo)
  job: null,          // {id}
  live: null,         // the camera connection
  blobUrls: [],
};

class ApiError extends Error {
  constructor(message, status, code, retryAfterS) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterS = retryAfterS;
  }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.token) headers.set("Authorization", `Bearer ${state.token}`);
  const response = await fetch(path, { ...options, headers });
  if (response.ok) return response;
  let body = {};
  try { body = await response.json(); } catch { /* not JSON */ }
  if (response.status === 401) $("token-box").hidden = false;
  const retry = Number(response.headers.get("Retry-After")) || null;
  throw new ApiError(body.error || `${response.status} ${response.statusText}`, response.status, body.code, retry);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function showMessage(text, bad = false) {
  const box = $("message");
  box.textContent = text;
  box.classList.toggle("bad", bad);
  box.hidden = !text;
}

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

// ---- server state and options ------------------------------------------------------------

async function watchReadiness() {
  const pill = $("server-state");
  for (;;) {
    try {
      const response = await fetch("/readyz");
      const body = await response.json();
      pill.textContent = response.ok ? `ready: ${body.models.join(", ")}` : body.status;
      pill.className = `pill ${response.ok ? "ready" : body.status === "error" ? "bad" : ""}`;
      if (response.ok) return;
    } catch {
      pill.textContent = "server unreachable";
      pill.className = "pill bad";
    }
    await sleep(2000);
  }
}

async function loadOptions() {
  let models, vocab;
  try {
    [models, vocab] = await Promise.all([
      api("/v1/models").then((r) => r.json()),
      api("/v1/exercises").then((r) => r.json()),
    ]);
  } catch (error) {
    showMessage(error.status === 401 ? "Enter this server's token above." : error.message, true);
    return;
  }
  state.vocab = vocab;
  state.models = new Map(models.map((m) => [m.name, m]));
  const modelSelect = $("model");
  modelSelect.replaceChildren(...models.filter((m) => m.available).map((m) =>
    element("option", { value: m.name, textContent: m.name, title: m.description, selected: m.default })));
  $("exercise").replaceChildren(element("option", { value: "", textContent: "none" }),
    ...vocab.exercises.map((e) => element("option", { value: e.name, textContent: e.name })));
  fillChoices($("pose"), vocab.pose_sources, "auto");
  fillChoices($("person-mask"), vocab.person_mask_sources, "auto");
  const peopleModels = models.filter((m) => m.people_source && m.available);
  fillChoices($("people-source"), ["parser", ...peopleModels.map((m) => m.name)],
    peopleModels.find((m) => m.default_people)?.name || "parser");
  const l = vocab.limits;
  $("limits").textContent = `Up to ${l.max_upload_mb} MB, ${(l.max_image_pixels / 1e6).toFixed(0)} megapixels, `
    + `videos up to ${l.max_video_s} s. Files are judged by their content and deleted after a while.`;
  showMessage("");
}

function fillChoices(select, values, chosen) {
  select.replaceChildren(...values.map((v) => element("option", { value: v, textContent: v, selected: v === chosen })));
}

function options() {
  return {
    model: $("model").value,
    max_people: $("max-people").value || "4",
    people: $("people-source").value,
    pose: $("pose").value,
    person_mask: $("person-mask").value,
    exercise: $("exercise").value,
    frames: $("frames").value,
  };
}

function optionsForm(fields) {
  const form = new FormData();
  const chosen = options();
  for (const name of fields) if (chosen[name]) form.append(name, chosen[name]);
  return form;
}

// ---- results ------------------------------------------------------------------------------

function clearResult() {
  for (const url of state.blobUrls) URL.revokeObjectURL(url);
  state.blobUrls = [];
  state.view = null;
  if (state.track) state.track.stop.abort();
  state.track = null;
  $("view").classList.remove("over-video");
  delete $("overlay").dataset.frame;
  $("result").hidden = true;
  $("overlay").hidden = true;
  const video = $("result-video");
  video.hidden = true;
  video.removeAttribute("src");
  $("downloads").hidden = true;
  $("live-stats").hidden = true;
  $("people").replaceChildren();
  $("reps").replaceChildren();
  $("job").hidden = true;
}

function blobUrl(blob) {
  const url = URL.createObjectURL(blob);
  state.blobUrls.push(url);
  return url;
}

// A label map PNG (class ids as grey values) -> {labels: Uint8Array of class ids, width, height}.
async function decodeLabelPng(blob) {
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const canvas = element("canvas", { width: bitmap.width, height: bitmap.height });
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const labels = new Uint8Array(bitmap.width * bitmap.height);
  for (let i = 0; i < labels.length; i++) labels[i] = rgba[i * 4];  // grey PNG: class id in every channel
  bitmap.close();
  return { labels, width: canvas.width, height: canvas.height };
}

function decodeLabelMap(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return decodeLabelPng(new Blob([bytes], { type: "image/png" }));
}

// Shows `image` (an ImageBitmap or canvas) with the label map coloured over it.
async function showParse(image, result) {
  const { labels, width, height } = await decodeLabelMap(result.label_map.data);
  const base = element("canvas", { width, height });  // a copy: a camera frame's bitmap is closed later
  base.getContext("2d").drawImage(image, 0, 0, width, height);
  showView({ base, labels, width, height, model: state.models.get(result.model), people: result.frame.people,
             frameSize: result.frame.frame_size });
}

// Makes `view` the overlay's: its base image (null: transparent, over the video) and label map.
function showView(view) {
  if (!state.view || state.view.model !== view.model) showParts(view.model);
  state.view = view;
  const canvas = $("overlay");
  if (canvas.width !== view.width || canvas.height !== view.height) {
    canvas.width = view.width;
    canvas.height = view.height;
  }
  canvas.hidden = false;
  $("result").hidden = false;
  $("view-settings").hidden = false;
  renderOverlay();
}

function showParts(model) {
  state.visible = model.labels.map((_, id) => id !== 0);
  const groups = Object.keys(model.groups).length ? Object.entries(model.groups)
    : [["parts", model.labels.map((_, id) => id).slice(1)]];
  const list = $("parts");
  list.replaceChildren();
  for (const [group, ids] of groups) {
    const groupBox = element("input", { type: "checkbox", checked: true });
    const partBoxes = ids.map((id) => {
      const box = element("input", { type: "checkbox", checked: true, name: model.labels[id] });
      box.dataset.classId = id;
      box.addEventListener("change", () => { state.visible[id] = box.checked; renderOverlay(); });
      const [r, g, b] = model.palette[id];
      const swatch = element("span", { className: "swatch" });
      swatch.style.background = `rgb(${r}, ${g}, ${b})`;
      list.append(element("li", {}, [element("label", {}, [box, swatch, model.labels[id].replaceAll("_", " ")])]));
      return box;
    });
    groupBox.addEventListener("change", () => {
      for (const box of partBoxes) {
        box.checked = groupBox.checked;
        state.visible[Number(box.dataset.classId)] = box.checked;
      }
      renderOverlay();
    });
    list.insertBefore(element("li", {}, [element("label", {}, [groupBox, element("strong", { textContent: group })])]),
      partBoxes[0].closest("li"));
  }
}

function setAllParts(on) {
  for (const box of $("parts").querySelectorAll("input[type=checkbox]")) {
    box.checked = on;
    if (box.dataset.classId) state.visible[Number(box.dataset.classId)] = on;
  }
  renderOverlay();
}

// The shown parts of the view's label map in their colours at the chosen opacity, transparent
// elsewhere: one layer drawn over an image's pixels, or over the playing video.
function partsLayer(view) {
  const layer = new ImageData(view.width, view.height);
  const alpha = Math.round(Number($("opacity").value) * 255);
  const palette = view.model.palette;
  const pixels = layer.data;
  const labels = view.labels;
  for (let i = 0, j = 0; i < labels.length; i++, j += 4) {
    const id = labels[i];
    if (id === 0 || !state.visible[id]) continue;
    const color = palette[id];
    pixels[j] = color[0];
    pixels[j + 1] = color[1];
    pixels[j + 2] = color[2];
    pixels[j + 3] = alpha;
  }
  return layer;
}

function renderOverlay() {
  const view = state.view;
  if (!view) return;
  const layer = state.layer ||= element("canvas");
  layer.width = view.width;
  layer.height = view.height;
  layer.getContext("2d").putImageData(partsLayer(view), 0, 0);
  const ctx = $("overlay").getContext("2d");
  ctx.clearRect(0, 0, view.width, view.height);
  if (view.base) ctx.drawImage(view.base, 0, 0);
  ctx.drawImage(layer, 0, 0);
  if ($("skeleton").checked) drawSkeletons(ctx, view.people, view.width / view.frameSize[0], view.height / view.frameSize[1]);
}

// Keypoints come in the frame's own pixels (frame_size); the canvas may be scaled from them.
function drawSkeletons(ctx, people, scaleX, scaleY) {
  const { skeleton, min_score: minScore } = state.vocab.keypoints;
  const width = Math.max(2, Math.round(Math.max(ctx.canvas.width, ctx.canvas.height) / 400));
  ctx.lineWidth = width;
  for (const person of people) {
    if (!person.keypoints) continue;
    const points = person.keypoints.map(([x, y, score]) => [x * scaleX, y * scaleY, score]);
    ctx.strokeStyle = "rgb(255, 255, 0)";
    for (const [a, b] of skeleton) {
      if (points[a][2] < minScore || points[b][2] < minScore) continue;
      ctx.beginPath();
      ctx.moveTo(points[a][0], points[a][1]);
      ctx.lineTo(points[b][0], points[b][1]);
      ctx.stroke();
    }
    ctx.fillStyle = "white";
    for (const [x, y, score] of points) {
      if (score < minScore) continue;
      ctx.beginPath();
      ctx.arc(x, y, width + 2, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
}

function table(caption, columns, rows) {
  const head = element("tr", {}, columns.map((c) => element("th", { textContent: c.replaceAll("_", " ") })));
  const body = rows.map((row) => element("tr", {}, row.map((cell) => element("td", { textContent: cell }))));
  return element("table", {}, [element("caption", { textContent: caption }), head, ...body]);
}

const cell = (value, digits = 1) => value === null || value === undefined ? "–"
  : typeof value === "boolean" ? (value ? "yes" : "no")
  : typeof value === "number" && !Number.isInteger(value) ? value.toFixed(digits) : String(value);

function showPeople(result) {
  const joints = ["left_knee", "right_knee", "left_hip", "right_hip", "left_elbow", "right_elbow"];
  const people = result.frame.people;
  const rows = people.map((p) => [p.id, cell(p.score, 2), p.bbox ? p.bbox.join(", ") : "–",
    ...joints.map((j) => cell(result.angles?.[String(p.id)]?.[j]?.deg))]);
  const timing = Object.values(result.frame.timings_ms).reduce((a, b) => a + b, 0);
  $("people").replaceChildren(table(`${people.length} ${people.length === 1 ? "person" : "people"} `
    + `(${result.model}, ${timing.toFixed(0)} ms on the server); joint angles in degrees`,
  ["person", "score", "bbox", ...joints], rows));
}

function showReps(summary) {
  const columns = state.vocab.rep_columns;
  const rows = summary.per_rep.map((rep) => columns.map((c) => cell(rep[c], 2)));
  const caption = `${summary.exercise.name}: ${summary.reps} ${summary.reps === 1 ? "rep" : "reps"}`;
  const reps = table(caption, columns, rows);
  reps.id = "reps-table";
  const people = Object.entries(summary.people).map(([id, p]) => [id, p.reps, p.partials, p.frames,
    p.unknown_frames, p.hint || ""]);
  $("reps").replaceChildren(reps, table("per person", ["person", "reps", "partials", "frames", "angle unknown", "hint"],
    people));
}

// ---- an image ------------------------------------------------------------------------------

async function parseImage(file, bitmap) {
  const form = optionsForm(["model", "max_people", "people", "pose", "person_mask"]);
  form.append("image", file);
  form.append("label_map", "true");
  form.append("angles", "2d");
  showMessage(`Parsing ${file.name}…`);
  const started = performance.now();
  const result = await (await api("/v1/parse", { method: "POST", body: form })).json();
  await showParse(bitmap, result);
  showPeople(result);
  showMessage(`${file.name}: parsed in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
}

// ---- a video -------------------------------------------------------------------------------

async function runJob(file) {
  const form = optionsForm(["model", "max_people", "people", "pose", "person_mask", "exercise", "frames"]);
  form.append("video", file);
  form.append("label_maps", "true");
  $("job").hidden = false;
  $("job-name").textContent = file.name;
  $("job-progress").removeAttribute("value");
  $("job-state").textContent = "uploading…";
  let status;
  for (;;) {
    try {
      status = await (await api("/v1/jobs", { method: "POST", body: form })).json();
      break;
    } catch (error) {
      if (error.status !== 429) throw error;
      const wait = error.retryAfterS || 5;
      $("job-state").textContent = `the server is busy; trying again in ${wait} s`;
      await sleep(wait * 1000);
    }
  }
  const job = state.job = { id: status.id };
  showMessage("");
  while (state.job === job) {
    showJobStatus(status);
    if (["done", "failed", "cancelled"].includes(status.state)) break;
    await sleep(POLL_MS);
    status = await (await api(`/v1/jobs/${job.id}`)).json();
  }
  if (state.job !== job) return;
  state.job = null;
  $("job-cancel").hidden = true;
  if (status.state === "failed") showMessage(`The video failed: ${status.error}`, true);
  if (status.outputs.video) await showJobResult(status);
}

function showJobStatus(status) {
  const progress = $("job-progress");
  if (status.progress === null) progress.removeAttribute("value");
  else progress.value = status.progress;
  const frames = status.total_frames ? `${status.frames} of ${status.total_frames} frames`
    : `${status.frames} frame${status.frames === 1 ? "" : "s"}`;
  const eta = status.eta_s !== null ? `, about ${Math.ceil(status.eta_s)} s left` : "";
  $("job-state").textContent = `${status.state}: ${frames}${eta}`;
  $("job-cancel").hidden = ["done", "failed", "cancelled"].includes(status.state);
}

// A finished job: its plain video plays with the parts coloured here over it (the annotated MP4
// when the job kept no label maps), with the reps table and the downloads.
async function showJobResult(status) {
  const { outputs } = status;
  const fetched = async (kind) => outputs[kind] ? (await api(outputs[kind])).blob() : null;
  const [metrics, summary] = await Promise.all([fetched("metrics"), fetched("summary")]);
  const own = outputs.plain && outputs.labels;
  const video = $("result-video");
  video.src = blobUrl(await fetched(own ? "plain" : "video"));
  video.hidden = false;
  $("result").hidden = false;
  $("view-settings").hidden = !own;
  if (own) followVideo(video, status, metrics ? await metrics.text() : "");
  const names = { video: "annotated.mp4", metrics: "metrics.jsonl", summary: "summary.json" };
  const stem = status.name.replace(/\.[^.]*$/, "");
  $("downloads").replaceChildren(element("strong", { textContent: "Downloads" }),
    ...Object.entries(names).filter(([kind]) => outputs[kind]).map(([kind, name]) =>
      downloadLink(outputs[kind], `${stem}-${name}`, kind === "video" ? "annotated video" : kind)));
  $("downloads").hidden = false;
  if (summary) showReps(JSON.parse(await summary.text()));
}

// A link that fetches the file when clicked (with the token, when the server needs one).
function downloadLink(path, filename, text) {
  const link = element("a", { href: path, textContent: text });
  link.addEventListener("click", async (event) => {
    event.preventDefault();
    try {
      const blob = await (await api(path)).blob();
      element("a", { href: blobUrl(blob), download: filename }).click();
    } catch (error) {
      showMessage(error.message, true);
    }
  });
  return link;
}

// ---- a job's video under the overlay ---------------------------------------------------------

// Shows over `video` the label map of the frame on screen, as it plays, pauses and seeks. Frames
// are found by time: the JSONL's pts_s is each frame's time in the plain video.
function followVideo(video, status, jsonl) {
  const frames = jsonl.split("\n").filter((line) => line.trim()).map((line) => JSON.parse(line))
    .filter((line) => line.index !== undefined);
  const track = state.track = { status, frames, times: frames.map((f) => f.pts_s), model: state.models.get(status.model),
                                labels: new Map(), wanted: -1, stop: new AbortController() };
  $("view").classList.add("over-video");
  const show = (time) => { if (state.track === track) showFrameAt(track, time); };
  const signal = track.stop.signal;
  if ("requestVideoFrameCallback" in video) {
    const step = (_, frame) => {
      if (signal.aborted) return;
      show(frame.mediaTime);
      video.requestVideoFrameCallback(step);
    };
    video.requestVideoFrameCallback(step);
  } else {
    video.addEventListener("timeupdate", () => show(video.currentTime), { signal });
  }
  video.addEventListener("seeked", () => show(video.currentTime), { signal });
  video.addEventListener("loadeddata", () => show(video.currentTime), { signal, once: true });
}

// The position in `times` (increasing) of the frame shown at `time`: the last one that starts by then.
function frameAt(times, time) {
  let low = 0;
  let high = times.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if (times[middle] <= time + 0.001) low = middle;
    else high = middle - 1;
  }
  return low;
}

async function showFrameAt(track, time) {
  if (!track.frames.length) return;
  const at = frameAt(track.times, time);
  if (at === track.wanted) return;
  track.wanted = at;
  for (let next = at; next < Math.min(at + LABELS_AHEAD, track.frames.length); next++) labelsAt(track, next);
  for (const kept of track.labels.keys()) {
    if (track.labels.size <= LABELS_KEPT) break;
    if (kept < at - LABELS_KEPT / 2 || kept >= at + LABELS_AHEAD) track.labels.delete(kept);
  }
  let labels;
  try {
    labels = await labelsAt(track, at);
  } catch (error) {
    showMessage(error.message, true);
    return;
  }
  if (state.track !== track || track.wanted !== at) return;
  const frame = track.frames[at];
  showView({ base: null, ...labels, model: track.model, people: frame.people, frameSize: frame.frame_size });
  $("overlay").dataset.frame = frame.index;
}

function labelsAt(track, at) {
  let labels = track.labels.get(at);
  if (!labels) {
    const path = track.status.outputs.labels.replace("{index}", track.frames[at].index);
    labels = api(path).then((response) => response.blob()).then(decodeLabelPng);
    labels.catch(() => track.labels.delete(at));
    track.labels.set(at, labels);
  }
  return labels;
}

async function cancelJob() {
  const job = state.job;
  if (!job) return;
  state.job = null;
  await api(`/v1/jobs/${job.id}`, { method: "DELETE" });
  $("job-state").textContent = "cancelled";
  $("job-cancel").hidden = true;
}

// ---- the camera ----------------------------------------------------------------------------

async function toggleCamera() {
  if (state.live) {
    stopCamera("");
    return;
  }
  clearResult();
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } } });
  } catch (error) {
    showMessage(`No camera: ${error.message}`, true);
    return;
  }
  const feed = $("camera-feed");
  feed.srcObject = stream;
  await feed.play();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/live`);
  ws.binaryType = "arraybuffer";
  const live = state.live = { ws, stream, sent: new Map(), seq: 0, timer: null, busy: false, results: 0,
                              canvas: element("canvas") };
  const chosen = options();
  ws.onopen = () => ws.send(JSON.stringify({
    token: state.token || undefined, model: chosen.model, max_people: Number(chosen.max_people),
    people: chosen.people, pose: chosen.pose, person_mask: chosen.person_mask, exercise: chosen.exercise || undefined,
  }));
  ws.onmessage = (event) => onLiveMessage(live, JSON.parse(event.data));
  ws.onclose = (event) => { if (state.live === live) stopCamera(event.reason); };
  $("camera").textContent = "Stop camera";
  showMessage("Starting the camera…");
}

function stopCamera(reason) {
  const live = state.live;
  if (!live) return;
  state.live = null;
  clearInterval(live.timer);
  if (live.ws.readyState <= 1) live.ws.close();
  for (const track of live.stream.getTracks()) track.stop();
  for (const bitmap of live.sent.values()) bitmap.close();
  $("camera").textContent = "Use my camera";
  if (reason) showMessage(reason, true);
}

async function onLiveMessage(live, message) {
  if (message.type === "error") {
    showMessage(message.error, true);
  } else if (message.type === "ready") {
    showMessage(`Camera on: ${message.model}${message.exercise ? `, counting ${message.exercise.name}` : ""}.`);
    live.timer = setInterval(() => sendFrame(live), 1000 / LIVE_FPS);
  } else if (message.type === "result") {
    const frame = live.sent.get(message.seq);
    for (const [seq, bitmap] of live.sent) {
      if (seq < message.seq) { bitmap.close(); live.sent.delete(seq); }
    }
    if (!frame || state.live !== live) return;
    live.results += 1;
    await showParse(frame, message);
    const stats = $("live-stats");
    stats.hidden = false;
    stats.textContent = `${message.fps.toFixed(1)} results/s · ${message.latency_ms.toFixed(0)} ms on the server · `
      + `${message.dropped} frames skipped · ${live.results} results`;
    stats.dataset.results = live.results;
    const fitness = message.frame.analysis?.fitness;
    if (fitness) {
      const rows = Object.entries(fitness.people).map(([id, p]) => [id, p.reps, p.state, cell(p.signal_deg)]);
      $("reps").replaceChildren(table(`${fitness.exercise.name}: live count`, ["person", "reps", "state", "angle"], rows));
    }
  }
}

async function sendFrame(live) {
  const feed = $("camera-feed");
  if (live.busy || live.ws.readyState !== WebSocket.OPEN || live.ws.bufferedAmount > (1 << 20) || !feed.videoWidth) return;
  live.busy = true;
  try {
    const canvas = live.canvas;
    canvas.width = feed.videoWidth;
    canvas.height = feed.videoHeight;
    canvas.getContext("2d").drawImage(feed, 0, 0);
    const bitmap = await createImageBitmap(canvas);
    const jpeg = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.8));
    const seq = ++live.seq;
    live.sent.set(seq, bitmap);
    for (const [old, kept] of live.sent) {
      if (live.sent.size <= LIVE_KEPT_FRAMES) break;
      kept.close();
      live.sent.delete(old);
    }
    const header = new DataView(new ArrayBuffer(4));
    header.setUint32(0, seq);
    live.ws.send(new Blob([header.buffer, jpeg]));
  } finally {
    live.busy = false;
  }
}

// ---- wiring --------------------------------------------------------------------------------

async function handleFile(file) {
  if (!file) return;
  if (state.live) stopCamera("");
  state.job = null;
  clearResult();
  let bitmap = null;
  if (!file.type.startsWith("video/")) {
    try { bitmap = await createImageBitmap(file); } catch { bitmap = null; }  // not an image: a video
  }
  if (!bitmap && file.type.startsWith("image/")) {
    showMessage(`${file.name}: this browser cannot read the picture (damaged, or a format such as HEIC); ` +
                "send JPEG, PNG, WebP or BMP", true);
    return;
  }
  try {
    if (bitmap) await parseImage(file, bitmap);
    else await runJob(file);
  } catch (error) {
    showMessage(error.message, true);
    $("job").hidden = true;
  }
}

function wire() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    handleFile(event.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (event) => { handleFile(event.target.files[0]); event.target.value = ""; });
  $("camera").addEventListener("click", toggleCamera);
  $("job-cancel").addEventListener("click", () => cancelJob().catch((error) => showMessage(error.message, true)));
  $("opacity").addEventListener("input", renderOverlay);
  $("skeleton").addEventListener("change", renderOverlay);
  $("parts-all").addEventListener("click", () => setAllParts(true));
  $("parts-none").addEventListener("click", () => setAllParts(false));
  $("token-box").addEventListener("submit", (event) => event.preventDefault());
  $("token").addEventListener("change", (event) => { state.token = event.target.value.trim() || null; loadOptions(); });
}

wire();
watchReadiness();
loadOptions();
