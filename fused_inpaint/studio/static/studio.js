// The studio page: open a clip, mark the object on keyframes, track, inpaint, download.
// Every file comes from this page's own server, by the ids it gave.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 300;
const PAINT_COLOR = "rgb(40, 120, 255)";

const state = {
  clip: null,          // the server's description of the open clip
  index: 0,            // the frame shown
  frames: new Map(),   // index -> Image
  overlays: new Map(), // "version:index" -> Image of the tracked mask
  maskVersion: null,
  keyframes: new Map(), // index -> {boxes: [[x, y, w, h]], paint: canvas or null}
  drag: null,          // the box or stroke being drawn
  playing: null,       // the playback timer
  job: null,           // the inpainting job's last state
  results: new Map(),  // "job:index" -> Image of an inpainted frame
};

// --- messages and requests ---------------------------------------------------------------

function say(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

async function request(method, url, body, headers = {}) {
  const options = { method, headers, credentials: "same-origin" };
  if (body instanceof Blob) options.body = body;
  else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["content-type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    throw new Error(`the server did not answer (${error.message})`);
  }
  const text = await response.text();
  let answer = null;
  try { answer = JSON.parse(text); } catch (_) { /* a plain-text refusal */ }
  if (!response.ok) throw new Error((answer && answer.error) || text || response.statusText);
  return answer;
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

async function poll(jobId, onUpdate) {
  for (;;) {
    const job = await request("GET", `/api/jobs/${jobId}`);
    onUpdate(job);
    if (["done", "failed", "cancelled"].includes(job.state)) return job;
    await sleep(POLL_MS);
  }
}

function image(url, cache, key) {
  let img = cache.get(key);
  if (!img) {
    img = new Image();
    img.onload = () => render();
    img.src = url;
    cache.set(key, img);
  }
  return img.complete && img.naturalWidth ? img : null;
}

// --- opening a clip ----------------------------------------------------------------------

function openClip(clip) {
  stop();
  Object.assign(state, { clip, index: 0, maskVersion: clip.mask_version, job: null });
  state.frames.clear();
  state.overlays.clear();
  state.keyframes.clear();
  for (const id of ["view", "result-input", "result-output"]) {
    $(id).width = clip.width;
    $(id).height = clip.height;
  }
  $("view").style.maxWidth = `calc(65vh * ${clip.width / clip.height})`; // whole, in view
  $("clip-name").textContent =
    `${clip.name}: ${clip.frames} frames, ${clip.width}x${clip.height}, ${clip.fps.toFixed(2)} fps`;
  $("dilate").value = clip.dilate;
  $("scrub").max = clip.frames - 1;
  $("scrub").value = 0;
  for (const id of ["scrub", "play", "track"]) $(id).disabled = false;
  $("inpaint").disabled = clip.mask_version === null;
  $("result").hidden = true;
  $("track-status").textContent = "";
  say(clip.warning || "", "info");
  for (let i = 0; i < clip.frames; i++) frameImage(i); // preloads, for playback
  updateKeyframes();
  render();
}

async function upload(file) {
  const limit = window.studioLimits.max_upload_bytes;
  if (file.size > limit) {
    say(`${file.name} is larger than the upload limit of ${Math.floor(limit / 2 ** 20)} MiB`);
    return;
  }
  say(`uploading ${file.name}…`, "info");
  try {
    const url = `/api/clips?name=${encodeURIComponent(file.name)}`;
    openClip(await request("POST", url, file, { "content-type": "application/octet-stream" }));
  } catch (error) {
    say(error.message);
  }
}

// --- drawing -----------------------------------------------------------------------------

const frameImage = (i) =>
  image(`/api/clips/${state.clip.id}/frames/${i}.jpg`, state.frames, i);

function overlayImage(i) {
  if (state.maskVersion === null) return null;
  const url = `/api/clips/${state.clip.id}/masks/${i}.png?version=${state.maskVersion}`;
  return image(url, state.overlays, `${state.maskVersion}:${i}`);
}

function resultImage(i) {
  const job = state.job;
  if (!job || i >= job.done) return null;
  return image(`/api/jobs/${job.id}/frames/${i}.jpg`, state.results, `${job.id}:${i}`);
}

function render() {
  if (!state.clip) return;
  const i = state.index;
  const view = $("view").getContext("2d");
  const frame = frameImage(i);
  view.clearRect(0, 0, state.clip.width, state.clip.height);
  if (frame) view.drawImage(frame, 0, 0);
  const key = state.keyframes.get(i);
  const overlay = overlayImage(i);
  if (overlay) view.drawImage(overlay, 0, 0);
  if (key && key.paint) { // what the user painted, over what tracking made of it
    view.globalAlpha = 0.35;
    view.drawImage(key.paint, 0, 0);
    view.globalAlpha = 1;
  }
  const boxes = key ? [...key.boxes] : [];
  if (state.drag && state.drag.box) boxes.push(state.drag.box);
  view.lineWidth = Math.max(2, state.clip.width / 320);
  view.strokeStyle = "#ffd400";
  for (const [x, y, w, h] of boxes) view.strokeRect(x, y, w, h);
  $("frame-label").textContent = `${i + 1} / ${state.clip.frames}${key ? " (key)" : ""}`;
  if (!$("result").hidden) renderResult(i, frame);
}

function renderResult(i, frame) {
  const input = $("result-input").getContext("2d");
  const output = $("result-output").getContext("2d");
  if (frame) input.drawImage(frame, 0, 0);
  const done = resultImage(i);
  if (done) {
    output.drawImage(done, 0, 0);
  } else {
    output.fillStyle = "#333";
    output.fillRect(0, 0, state.clip.width, state.clip.height);
    output.fillStyle = "#ccc";
    output.font = `${Math.round(state.clip.height / 12)}px system-ui`;
    output.fillText("not done yet", state.clip.width / 20, state.clip.height / 2);
  }
}

function show(i) {
  state.index = Math.max(0, Math.min(state.clip.frames - 1, i));
  $("scrub").value = state.index;
  render();
}

function play() {
  if (state.playing) return stop();
  $("play").textContent = "Pause";
  state.playing = setInterval(() => {
    show(state.index + 1 < state.clip.frames ? state.index + 1 : 0);
  }, 1000 / state.clip.fps);
}

function stop() {
  clearInterval(state.playing);
  state.playing = null;
  $("play").textContent = "Play";
}

// --- keyframes: boxes and brush ----------------------------------------------------------

function tool() {
  return document.querySelector('input[name="tool"]:checked').value;
}

function pointAt(event) {
  const rect = $("view").getBoundingClientRect();
  return [
    ((event.clientX - rect.left) * state.clip.width) / rect.width,
    ((event.clientY - rect.top) * state.clip.height) / rect.height,
  ];
}

function keyframe(i) {
  if (!state.keyframes.has(i)) state.keyframes.set(i, { boxes: [], paint: null });
  return state.keyframes.get(i);
}

// The brush starts from the tracked mask of this frame, so that painting corrects it.
function paintCanvas(i) {
  const key = keyframe(i);
  if (!key.paint) {
    key.paint = document.createElement("canvas");
    key.paint.width = state.clip.width;
    key.paint.height = state.clip.height;
    const overlay = overlayImage(i);
    if (overlay) {
      const paint = key.paint.getContext("2d");
      paint.drawImage(overlay, 0, 0);
      paint.globalCompositeOperation = "source-in";
      paint.fillStyle = PAINT_COLOR;
      paint.fillRect(0, 0, state.clip.width, state.clip.height);
    }
  }
  return key.paint;
}

function brush(from, to) {
  const paint = paintCanvas(state.index).getContext("2d");
  paint.globalCompositeOperation = tool() === "erase" ? "destination-out" : "source-over";
  paint.strokeStyle = PAINT_COLOR;
  paint.lineCap = paint.lineJoin = "round";
  paint.lineWidth = Number($("brush").value);
  paint.beginPath();
  paint.moveTo(...from);
  paint.lineTo(...to);
  paint.stroke();
}

function pointerDown(event) {
  if (!state.clip) return;
  stop();
  $("view").setPointerCapture(event.pointerId);
  const at = pointAt(event);
  state.drag = { start: at, last: at, box: null };
  if (tool() === "box") state.drag.box = [at[0], at[1], 0, 0];
  else brush(at, at);
  render();
}

function pointerMove(event) {
  if (!state.drag) return;
  const at = pointAt(event);
  if (tool() === "box") {
    const [x0, y0] = state.drag.start;
    state.drag.box = [Math.min(x0, at[0]), Math.min(y0, at[1]),
                      Math.abs(at[0] - x0), Math.abs(at[1] - y0)];
  } else {
    brush(state.drag.last, at);
  }
  state.drag.last = at;
  render();
}

function pointerUp() {
  if (!state.drag) return;
  const box = state.drag.box;
  state.drag = null;
  if (box) {
    // Whole pixels inside the frame; a click without a drag stays a box of zero size,
    // which the server refuses with a message.
    const x = Math.max(0, Math.round(box[0]));
    const y = Math.max(0, Math.round(box[1]));
    const w = Math.min(state.clip.width, Math.round(box[0] + box[2])) - x;
    const h = Math.min(state.clip.height, Math.round(box[1] + box[3])) - y;
    keyframe(state.index).boxes.push([x, y, Math.max(0, w), Math.max(0, h)]);
  }
  updateKeyframes();
  render();
}

function updateKeyframes() {
  const keys = [...state.keyframes.keys()].sort((a, b) => a - b);
  $("keyframes").textContent = keys.length ? keys.map((k) => k + 1).join(", ") : "none";
}

function clearKeyframe() {
  state.keyframes.delete(state.index);
  updateKeyframes();
  render();
}

// --- tracking and inpainting -------------------------------------------------------------

async function track() {
  const keyframes = [...state.keyframes].map(([frame, key]) => ({
    frame,
    boxes: key.boxes,
    mask: key.paint ? key.paint.toDataURL("image/png") : null,
  }));
  $("track").disabled = true;
  $("track-status").textContent = "tracking…";
  say("");
  try {
    const job = await request("POST", `/api/clips/${state.clip.id}/track`, { keyframes });
    const done = await poll(job.id, (j) => {
      $("track-status").textContent = j.state === "waiting" ? "waiting…" : "tracking…";
    });
    if (done.state !== "done") throw new Error(done.message);
    state.maskVersion = done.mask_version;
    $("track-status").textContent =
      `tracked in ${done.elapsed_s.toFixed(1)} s` + describeUnmasked(done.unmasked);
    $("inpaint").disabled = false;
    render();
  } catch (error) {
    $("track-status").textContent = "";
    say(error.message);
  } finally {
    $("track").disabled = false;
  }
}

// Frames the track left without a mask (the object left, was hidden, or was lost): if the
// object is there, a box on one of them brings it back.
function describeUnmasked(spans) {
  if (!spans.length) return "";
  const frames = spans.map(([first, last]) =>
    first === last ? `${first + 1}` : `${first + 1}–${last + 1}`);
  return `; no mask on frame${spans.length > 1 || spans[0][0] !== spans[0][1] ? "s" : ""} ` +
    `${frames.join(", ")}: if the object is there, mark it on one of them and track again`;
}

function describeProgress(job) {
  if (job.state === "waiting") {
    return `waiting: ${job.ahead} job${job.ahead === 1 ? "" : "s"} ahead on this device`;
  }
  if (job.state === "done") {
    return `done: ${job.total} frames in ${job.elapsed_s.toFixed(1)} s ` +
      `(${job.frames_per_s.toFixed(2)} frames/s)`;
  }
  if (job.state !== "running") return job.message || job.state;
  const rate = job.frames_per_s ? `${job.frames_per_s.toFixed(2)} frames/s` : "starting…";
  const left = job.seconds_left !== null ? ` · ${Math.ceil(job.seconds_left)} s left` : "";
  return `${job.done} / ${job.total} frames · ${rate}${left}`;
}

async function inpaint() {
  const body = { dilate: Number($("dilate").value), mode: $("mode").value };
  say("");
  $("inpaint").disabled = $("track").disabled = true;
  $("downloads").hidden = true;
  $("cancel").hidden = $("progress").hidden = $("result").hidden = false;
  stop();
  show(0); // where the first frames done appear
  try {
    state.job = await request("POST", `/api/clips/${state.clip.id}/inpaint`, body);
    const job = await poll(state.job.id, (j) => {
      state.job = j;
      $("progress").max = j.total;
      $("progress").value = j.done;
      $("progress-text").textContent = describeProgress(j);
      render();
    });
    if (job.state === "done") {
      for (const what of ["video", "frames", "mask"]) {
        $(`download-${what}`).href = `/api/jobs/${job.id}/download/${what}`;
      }
      $("downloads").hidden = false;
    } else {
      say(job.message);
    }
  } catch (error) {
    say(error.message);
  } finally {
    $("cancel").hidden = true;
    $("inpaint").disabled = $("track").disabled = false;
  }
}

async function cancel() {
  if (!state.job) return;
  try {
    await request("POST", `/api/jobs/${state.job.id}/cancel`);
  } catch (error) {
    say(error.message);
  }
}

// --- start -------------------------------------------------------------------------------

async function start() {
  $("open-file").addEventListener("change", (e) => e.target.files[0] && upload(e.target.files[0]));
  $("scrub").addEventListener("input", (e) => { stop(); show(Number(e.target.value)); });
  $("play").addEventListener("click", play);
  $("view").addEventListener("pointerdown", pointerDown);
  $("view").addEventListener("pointermove", pointerMove);
  $("view").addEventListener("pointerup", pointerUp);
  $("view").addEventListener("pointercancel", pointerUp);
  $("clear-key").addEventListener("click", clearKeyframe);
  $("track").addEventListener("click", track);
  $("inpaint").addEventListener("click", inpaint);
  $("cancel").addEventListener("click", cancel);
  try {
    const server = await request("GET", "/api/state");
    window.studioLimits = server;
    for (const mode of server.modes) $("mode").add(new Option(mode, mode));
    if (server.clips.length) openClip(server.clips[0]);
    document.body.dataset.ready = "true";
  } catch (error) {
    say(error.message);
  }
}

start();
