// xmodal search page: a plain-JS client of the public /v1 API (no build step, no network beyond
// this server). It doubles as an example client: every call goes through api() below.
"use strict";

const $ = (sel) => document.querySelector(sel);

const els = {
  textForm: $("#text-form"),
  query: $("#query"),
  indexSelect: $("#index-select"),
  kSelect: $("#k-select"),
  dropZone: $("#drop-zone"),
  imageInput: $("#image-input"),
  imagePanel: $("#image-panel"),
  imagePreview: $("#image-preview"),
  previewNote: $("#preview-note"),
  imageCaption: $("#image-caption"),
  vqaForm: $("#vqa-form"),
  question: $("#question"),
  answers: $("#vqa-answers"),
  clearImage: $("#clear-image"),
  status: $("#status"),
  error: $("#error"),
  grid: $("#grid"),
  activeModel: $("#active-model"),
  activeIndex: $("#active-index"),
  hitTemplate: $("#hit-template"),
  keyForm: $("#key-form"),
  keyInput: $("#api-key"),
  videoDropZone: $("#video-drop-zone"),
  videoInput: $("#video-input"),
  videoPanel: $("#video-panel"),
  videoPlayer: $("#video-player"),
  videoCaption: $("#video-caption"),
  captionTimeline: $("#caption-timeline"),
  videoVqaForm: $("#video-vqa-form"),
  videoQuestion: $("#video-question"),
  videoAnswer: $("#video-answer"),
  answerTimeline: $("#answer-timeline"),
  clearVideo: $("#clear-video"),
};

// Services started with XMODAL_API_KEYS answer 401 until the page sends a key.
const KEY_STORAGE = "xmodal-api-key";
let apiKey = sessionStorage.getItem(KEY_STORAGE) || "";
let mediaUrls = []; // blob: URLs of media fetched with the key, revoked when the grid is redrawn

// What the results grid currently shows, so that changing a filter re-runs it.
let lastSearch = null; // {kind: "text", query} | {kind: "image"} | {kind: "video"}
let currentImage = null; // the uploaded File
let currentVideo = null; // the uploaded video File
let searchSeq = 0; // drops responses of searches that a newer one superseded

class ApiError extends Error {}

/** The API's error message: `detail` is a string, or FastAPI's list of {loc, msg} for validation. */
function describeError(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => {
        const field = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").join(".") : "";
        return field ? `${field}: ${d.msg}` : d.msg;
      })
      .join("; ");
  }
  return `request failed (HTTP ${status})`;
}

/** Calls an API path relative to the page (so a reverse-proxy prefix still works); returns JSON. */
async function api(path, { json, form } = {}) {
  const init = { method: json || form ? "POST" : "GET", headers: { Accept: "application/json", ...authHeaders() } };
  if (json) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form) {
    init.body = form; // the browser sets the multipart boundary
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError("cannot reach the xmodal service; is it running?");
  }
  let body = null;
  try {
    body = await res.json();
  } catch (e) {
    body = null;
  }
  if (res.status === 401) askForKey();
  if (!res.ok) throw new ApiError(describeError(res.status, body));
  if (body === null) throw new ApiError(`unexpected non-JSON answer from ${path}`);
  return body;
}

function authHeaders() {
  return apiKey ? { "X-API-Key": apiKey } : {};
}

function askForKey() {
  sessionStorage.removeItem(KEY_STORAGE);
  if (!els.keyForm.hidden) return;
  els.keyForm.hidden = false;
  els.keyInput.focus();
}

/** Points el[attr] at a media URL. With an API key the file is fetched with the key (an <img> or
 * <video> cannot send headers) and shown from a blob: URL; `fragment` (e.g. "#t=2") is kept. */
async function setMediaSrc(el, attr, url, fragment = "") {
  if (!apiKey) {
    el[attr] = url + fragment;
    return;
  }
  try {
    const res = await fetch(url, { headers: authHeaders() });
    if (!res.ok) return; // the card still shows caption and score
    const blobUrl = URL.createObjectURL(await res.blob());
    mediaUrls.push(blobUrl);
    el[attr] = blobUrl + fragment;
  } catch (e) {
    // network error: as above
  }
}

function setStatus(text) {
  els.status.textContent = text;
}

function showError(message) {
  els.error.textContent = message;
  els.error.hidden = !message;
}

function selectedMedia() {
  const checked = document.querySelector('input[name="media"]:checked');
  return checked && checked.value ? checked.value : null;
}

function searchOptions() {
  return { k: Number(els.kSelect.value), index: els.indexSelect.value || null, media: selectedMedia() };
}

/** "v0003" stays as it is; a bare number "3" reads "v3". */
function formatVersion(version) {
  return /^\d+$/.test(String(version)) ? `v${version}` : String(version);
}

// ---- active model and indexes --------------------------------------------------------------

async function loadInfo() {
  const [models, indexes] = await Promise.allSettled([api("v1/models"), api("v1/indexes")]);
  if (models.status === "fulfilled") {
    const a = models.value.active || {};
    els.activeModel.textContent = a.id || a.name || "unknown";
    if (a.fingerprint) els.activeModel.title = `fingerprint ${a.fingerprint}`;
  } else {
    els.activeModel.textContent = "unavailable";
  }
  els.indexSelect.replaceChildren();
  if (indexes.status === "fulfilled") {
    const { indexes: list = [], default: dflt } = indexes.value;
    for (const ix of list) {
      const opt = new Option(`${ix.name} (${ix.count} items)`, ix.name, false, ix.name === dflt);
      opt.dataset.version = ix.version;
      els.indexSelect.add(opt);
    }
    showActiveIndex();
    if (!list.length) {
      els.activeIndex.textContent = "none";
      showError("No index is loaded: build one with `xmodal index build`, then reload this page.");
    }
  } else {
    els.activeIndex.textContent = "unavailable";
    showError(indexes.reason.message);
  }
}

function showActiveIndex() {
  const opt = els.indexSelect.selectedOptions[0];
  if (!opt) return;
  els.activeIndex.textContent = `${opt.value} ${formatVersion(opt.dataset.version)}`;
}

// ---- results grid ---------------------------------------------------------------------------

function formatTime(sec) {
  const m = Math.floor(sec / 60);
  const s = Math.floor(sec % 60);
  return `${m}:${String(s).padStart(2, "0")}`;
}

function mediaElement(hit) {
  const label = hit.caption || hit.id;
  if (hit.media === "video") {
    const video = document.createElement("video");
    video.controls = true;
    video.preload = "metadata";
    video.muted = true;
    video.playsInline = true;
    setMediaSrc(video, "poster", hit.thumbnail_url);
    video.setAttribute("aria-label", `Video: ${label}`);
    const start = hit.start || 0;
    // The media fragment makes the browser start at the matched segment; currentTime covers
    // browsers that ignore it once the user scrubs back.
    setMediaSrc(video, "src", hit.url, start > 0 ? `#t=${start}` : "");
    video.addEventListener("loadedmetadata", () => {
      if (start > 0 && video.currentTime < start) video.currentTime = start;
    }, { once: true });
    return video;
  }
  const link = document.createElement("a");
  link.href = hit.url;
  link.target = "_blank";
  link.rel = "noopener";
  link.setAttribute("aria-label", `Open image: ${label}`);
  link.addEventListener("click", async (event) => {
    if (!apiKey) return; // a plain link works without a key
    event.preventDefault();
    const tab = window.open("", "_blank");
    const holder = { href: "" };
    await setMediaSrc(holder, "href", hit.url);
    if (tab && holder.href) tab.location = holder.href;
  });
  const img = document.createElement("img");
  setMediaSrc(img, "src", hit.thumbnail_url);
  img.alt = label;
  img.loading = "lazy";
  img.decoding = "async";
  link.append(img);
  return link;
}

/** `about` says what was searched ("for “cat”"); `emptyMessage` is the status when nothing matched. */
function renderHits(resp, about, emptyMessage) {
  mediaUrls.forEach((u) => URL.revokeObjectURL(u));
  mediaUrls = [];
  const frag = document.createDocumentFragment();
  for (const hit of resp.hits) {
    const card = els.hitTemplate.content.firstElementChild.cloneNode(true);
    card.dataset.media = hit.media;
    card.dataset.id = hit.id;
    card.querySelector(".media-box").append(mediaElement(hit));
    const caption = card.querySelector(".card-caption");
    caption.textContent = hit.caption || hit.id;
    caption.title = hit.id;
    card.querySelector(".badge").textContent = hit.media;
    card.querySelector(".score").textContent = `score ${hit.score.toFixed(3)}`;
    if (hit.media === "video" && hit.start != null) {
      const end = hit.end != null ? `\u2013${formatTime(hit.end)}` : "";
      card.querySelector(".segment").textContent = `${formatTime(hit.start)}${end}`;
    }
    frag.append(card);
  }
  els.grid.replaceChildren(frag);
  const n = resp.hits.length;
  setStatus(
    n
      ? `${n} result${n === 1 ? "" : "s"} ${about} from ${resp.index} ${formatVersion(resp.version)} in ${resp.took_ms.toFixed(0)} ms`
      : emptyMessage,
  );
}

async function runSearch(search) {
  lastSearch = search;
  const seq = ++searchSeq;
  showError("");
  setStatus("Searching\u2026");
  els.grid.setAttribute("aria-busy", "true");
  const opts = searchOptions();
  const mediaWord = opts.media ? `${opts.media}s` : "results";
  try {
    let resp;
    let about;
    let empty;
    if (search.kind === "text") {
      resp = await api("v1/search/text", { json: { query: search.query, ...opts } });
      about = `for \u201c${search.query}\u201d`;
      empty = `No ${mediaWord} match \u201c${search.query}\u201d.`;
    } else if (search.kind === "video") {
      // Search by clip: videos by default; the Show filter picks images, or both ("All").
      const form = videoForm(currentVideo, { k: String(opts.k), media: opts.media || "any" });
      if (opts.index) form.append("index", opts.index);
      resp = await api("v1/search/video", { form });
      about = "similar to your video";
      empty = `No similar ${mediaWord} found.`;
    } else {
      const form = imageForm(currentImage, { k: String(opts.k) });
      if (opts.index) form.append("index", opts.index);
      if (opts.media) form.append("media", opts.media);
      resp = await api("v1/search/image", { form });
      about = "similar to your image";
      empty = `No similar ${mediaWord} found.`;
    }
    if (seq !== searchSeq) return;
    renderHits(resp, about, empty);
  } catch (e) {
    if (seq !== searchSeq) return;
    els.grid.replaceChildren();
    // The service refused the image itself: captioning and questions would fail the same way.
    if (search.kind === "image") els.imagePanel.classList.add("failed");
    if (search.kind === "video") els.videoPanel.classList.add("failed");
    setStatus("");
    showError(e.message);
  } finally {
    if (seq === searchSeq) els.grid.removeAttribute("aria-busy");
  }
}

// ---- image: similar items, caption, questions -----------------------------------------------

/** A multipart body: the file under `field` ("image" or "video") and string fields. */
function fileForm(field, file, extra = {}) {
  const form = new FormData();
  form.append(field, file);
  for (const [key, value] of Object.entries(extra)) form.append(key, value);
  return form;
}

const imageForm = (image, extra) => fileForm("image", image, extra);
const videoForm = (video, extra) => fileForm("video", video, extra);

/** Back to the empty page: the upload's preview, file input and panel cleared. */
function clearUpload(preview, input, panel) {
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.removeAttribute("src");
  input.value = "";
  panel.hidden = true;
  els.grid.replaceChildren();
  lastSearch = null;
  setStatus("");
  els.query.focus();
}

/** The service's own choice of caption (mode auto: decoder, caption bank or WordNet concept, named in
 * the tooltip), else one retrieved from the index's captions. */
async function captionImage(image) {
  els.imageCaption.textContent = "Captioning\u2026";
  els.imageCaption.classList.remove("muted");
  els.imageCaption.title = "";
  let text;
  try {
    const resp = await api("v1/caption", { form: imageForm(image, { mode: "auto", k: "1" }) });
    text = resp.captions.length ? resp.captions[0].text : "";
    if (resp.captions.length) els.imageCaption.title = `by ${resp.captions[0].method}`;
  } catch (first) {
    try {
      const resp = await api("v1/caption", { form: imageForm(image, { mode: "retrieve", k: "1" }) });
      text = resp.captions.length ? resp.captions[0].text : "";
    } catch (second) {
      if (image !== currentImage) return;
      els.imageCaption.textContent = `No caption: ${first.message}`;
      els.imageCaption.classList.add("muted");
      return;
    }
  }
  if (image !== currentImage) return;
  els.imageCaption.textContent = text || "(no caption)";
}

function useImage(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    showError(`${file.name} is not an image (${file.type}); choose a PNG, JPEG, GIF or WebP file.`);
    return;
  }
  currentImage = file;
  if (els.imagePreview.src) URL.revokeObjectURL(els.imagePreview.src);
  els.imagePanel.classList.remove("failed");
  els.imagePreview.hidden = false;
  els.previewNote.hidden = true;
  els.imagePreview.src = URL.createObjectURL(file);
  els.imagePreview.alt = `Your image: ${file.name}`;
  els.answers.replaceChildren();
  els.imagePanel.hidden = false;
  captionImage(file);
  runSearch({ kind: "image" });
}

/** The status line of a VQA answer: the best answer, or that the model is not sure of it (an image's
 * answer says so; a video's answers are votes over its segments, each with its own method). */
function answerLine(resp) {
  const best = resp.answers[0];
  if (!best) return "The model gave no answer.";
  return resp.unsure ? `Not sure: perhaps ${best.answer}` : `Answer: ${best.answer}`;
}

async function askQuestion(event) {
  event.preventDefault();
  const question = els.question.value.trim();
  if (!question || !currentImage) return;
  showError("");
  setStatus("Thinking about your question\u2026");
  els.answers.replaceChildren();
  try {
    const resp = await api("v1/vqa", { form: imageForm(currentImage, { question, k: "3" }) });
    for (const a of resp.answers) {
      const li = document.createElement("li");
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.setProperty("--p", String(a.probability));
      const text = document.createElement("span");
      text.className = "answer";
      text.textContent = a.answer;
      const prob = document.createElement("span");
      prob.className = "prob";
      prob.textContent = `${(a.probability * 100).toFixed(1)}%`;
      li.append(bar, text, prob);
      els.answers.append(li);
    }
    els.answers.classList.toggle("unsure", resp.unsure);
    els.answers.title = `by ${resp.solver}`;
    setStatus(answerLine(resp));
  } catch (e) {
    setStatus("");
    showError(e.message);
  }
}

function clearImage() {
  currentImage = null;
  clearUpload(els.imagePreview, els.imageInput, els.imagePanel);
}

// ---- video: caption and answers per segment on a timeline, similar clips ---------------------

/** One button per segment, as wide as the segment is long; choosing one plays the video from there. */
function renderTimeline(list, segments) {
  const frag = document.createDocumentFragment();
  for (const seg of segments) {
    const li = document.createElement("li");
    li.style.setProperty("--len", String(Math.max(seg.end - seg.start, 0.01)));
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.start = String(seg.start);
    button.dataset.end = String(seg.end);
    const span = `${formatTime(seg.start)}\u2013${formatTime(seg.end)}`;
    button.title = `${span}: ${seg.text} (${(seg.confidence * 100).toFixed(0)}%)`;
    button.setAttribute("aria-label", `${span}: ${seg.text}`);
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = span;
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = seg.text;
    button.append(when, what);
    li.append(button);
    frag.append(li);
  }
  list.replaceChildren(frag);
}

function seekTo(button) {
  els.videoPlayer.currentTime = Number(button.dataset.start);
  for (const b of document.querySelectorAll(".timeline button")) b.removeAttribute("aria-current");
  button.setAttribute("aria-current", "true");
}

async function captionVideo(video) {
  els.videoCaption.textContent = "Captioning\u2026";
  els.videoCaption.classList.remove("muted");
  els.captionTimeline.replaceChildren();
  let resp;
  try {
    resp = await api("v1/caption", { form: videoForm(video, { mode: "auto", k: "1" }) });
  } catch (first) {
    try { // captions retrieved from the index
      resp = await api("v1/caption", { form: videoForm(video, { mode: "retrieve", k: "1" }) });
    } catch (second) {
      if (video !== currentVideo) return;
      els.videoCaption.textContent = `No caption: ${first.message}`;
      els.videoCaption.classList.add("muted");
      return;
    }
  }
  if (video !== currentVideo) return;
  els.videoCaption.textContent = resp.captions.length ? resp.captions[0].text : "(no caption)";
  renderTimeline(els.captionTimeline, resp.segments);
}

function useVideo(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("video/") && !/\.(mp4|webm|avi|mov|mkv)$/i.test(file.name)) {
    showError(`${file.name} is not a video (${file.type}); choose an mp4, webm, avi, mov or mkv file.`);
    return;
  }
  currentVideo = file;
  if (els.videoPlayer.src) URL.revokeObjectURL(els.videoPlayer.src);
  els.videoPanel.classList.remove("failed");
  els.videoPlayer.src = URL.createObjectURL(file);
  els.videoAnswer.hidden = true;
  els.answerTimeline.replaceChildren();
  els.videoPanel.hidden = false;
  captionVideo(file);
  runSearch({ kind: "video" });
}

async function askAboutVideo(event) {
  event.preventDefault();
  const question = els.videoQuestion.value.trim();
  if (!question || !currentVideo) return;
  const video = currentVideo;
  showError("");
  setStatus("Watching the video for your question\u2026");
  els.answerTimeline.replaceChildren();
  els.videoAnswer.hidden = true;
  try {
    const resp = await api("v1/vqa", { form: videoForm(video, { question, k: "3" }) });
    if (video !== currentVideo) return;
    els.videoAnswer.textContent = answerLine(resp);
    els.videoAnswer.hidden = false;
    renderTimeline(els.answerTimeline, resp.segments);
    setStatus(answerLine(resp));
  } catch (e) {
    setStatus("");
    showError(e.message);
  }
}

function clearVideo() {
  currentVideo = null;
  clearUpload(els.videoPlayer, els.videoInput, els.videoPanel);
}

// ---- wiring ---------------------------------------------------------------------------------

els.keyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  apiKey = els.keyInput.value.trim();
  if (!apiKey) return;
  sessionStorage.setItem(KEY_STORAGE, apiKey);
  els.keyForm.hidden = true;
  showError("");
  await loadInfo();
  if (!els.keyForm.hidden) return; // the key was refused too
  if (lastSearch && lastSearch.kind === "image" && currentImage) useImage(currentImage);
  else if (lastSearch && lastSearch.kind === "video" && currentVideo) useVideo(currentVideo);
  else if (lastSearch) runSearch(lastSearch);
  else els.query.focus();
});

els.textForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const query = els.query.value.trim();
  if (!query) {
    showError("Type something to search for.");
    return;
  }
  runSearch({ kind: "text", query });
});

for (const control of [...document.querySelectorAll('input[name="media"]'), els.kSelect, els.indexSelect]) {
  control.addEventListener("change", () => {
    if (control === els.indexSelect) showActiveIndex();
    if (lastSearch) runSearch(lastSearch);
  });
}

els.imageInput.addEventListener("change", () => useImage(els.imageInput.files[0]));
els.vqaForm.addEventListener("submit", askQuestion);
els.clearImage.addEventListener("click", clearImage);
els.videoInput.addEventListener("change", () => useVideo(els.videoInput.files[0]));
els.videoVqaForm.addEventListener("submit", askAboutVideo);
els.clearVideo.addEventListener("click", clearVideo);
for (const list of [els.captionTimeline, els.answerTimeline]) {
  list.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (button) seekTo(button);
  });
}
// The browser cannot draw a broken file either; the service's error message says why.
els.imagePreview.addEventListener("error", () => {
  if (!els.imagePreview.getAttribute("src")) return;
  els.imagePreview.hidden = true;
  els.previewNote.hidden = false;
});

for (const [zone, use] of [[els.dropZone, useImage], [els.videoDropZone, useVideo]]) {
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    use(event.dataTransfer.files[0]);
  });
}
// A file dropped anywhere else would navigate away from the page.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());

loadInfo();
