// Upload, live progress and delete/retry for the detector web app.
// Plain DOM code, no dependencies: the app must work offline under a strict CSP.
(function () {
  "use strict";

  const POLL_MS = 1000;
  const STATE_LABEL = { queued: "Queued", running: "Analysing", done: "Done", failed: "Failed" };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function fmtSize(n) {
    const units = ["bytes", "kB", "MB", "GB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i === 0 ? n + " bytes" : n.toFixed(1) + " " + units[i];
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return "";
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const pad = (x) => String(x).padStart(2, "0");
    return h ? h + ":" + pad(m) + ":" + pad(sec) : m + ":" + pad(sec);
  }

  function fmtEta(s) {
    if (s < 5) return "almost done";
    if (s < 90) return "about " + Math.round(s / 5) * 5 + " s left";
    if (s < 5400) return "about " + Math.round(s / 60) + " min left";
    return "about " + (s / 3600).toFixed(1) + " h left";
  }

  function fmtDate(ts) {
    const d = new Date(ts * 1000);
    const pad = (x) => String(x).padStart(2, "0");
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function statusText(job) {
    if (job.state === "queued") return job.queue_position ? "Queued (#" + job.queue_position + " in line)" : "Queued";
    if (job.state === "running") {
      let t = job.percent + "%";
      if (job.eta_s !== null) t += " \u00b7 " + fmtEta(job.eta_s);
      return t;
    }
    return STATE_LABEL[job.state] || job.state;
  }

  async function api(method, url) {
    const res = await fetch(url, { method, headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!res.ok && res.status !== 204) {
      let detail = res.status + " " + res.statusText;
      try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(detail);
    }
    return res.status === 204 ? null : res.json();
  }

  // ---- delete / retry (any page) ---------------------------------------------
  document.addEventListener("click", async (ev) => {
    const del = ev.target.closest("[data-delete]");
    const retry = ev.target.closest("[data-retry]");
    if (del) {
      const name = del.getAttribute("data-name") || "this recording";
      if (!window.confirm("Delete \u201c" + name + "\u201d and its report? This cannot be undone.")) return;
      del.disabled = true;
      try {
        await api("DELETE", del.getAttribute("data-delete"));
        const row = del.closest("tr[data-job]");
        if (row && !del.hasAttribute("data-after")) { row.remove(); refreshHistory(); }
        else window.location.href = del.getAttribute("data-after") || "/";
      } catch (e) { del.disabled = false; window.alert("Could not delete: " + e.message); }
    } else if (retry) {
      retry.disabled = true;
      try { await api("POST", retry.getAttribute("data-retry")); window.location.reload(); }
      catch (e) { retry.disabled = false; window.alert("Could not start the analysis: " + e.message); }
    }
  });

  // ---- upload page -------------------------------------------------------------
  const form = document.getElementById("upload-form");
  const history = document.getElementById("history");
  let pollTimer = null;
  let uploading = 0;

  function renderRow(job) {
    const status = el("td", { class: "status" });
    if (job.state === "done") status.append(el("span", { class: "muted small", text: "Analysed" }));
    else if (job.state === "failed") {
      status.append(el("span", { class: "badge tone-neutral", text: "Failed", title: job.error ? job.error.message : "" }),
        el("div", { class: "small muted err", text: job.error ? job.error.message : "" }));
    } else {
      const bar = el("div", { class: "progress" }, el("span", { style: "width:" + job.percent + "%" }));
      status.append(bar, el("div", { class: "small muted live", text: statusText(job) }));
    }
    const verdict = el("td", { class: "verdict-cell" });
    if (job.verdict) {
      verdict.append(el("span", { class: "badge tone-" + job.tone, text: job.verdict_label }));
      if (job.probability !== null) verdict.append(" ", el("span", { class: "small muted", text: Math.round(job.probability * 100) + "%" }));
    }
    const actions = el("td", { class: "row-actions" });
    if (job.state === "done") actions.append(el("a", { class: "btn", href: job.urls.page, text: "Report" }), " ");
    if (job.state === "failed") actions.append(el("button", { class: "btn", type: "button", "data-retry": job.urls.api + "/retry", text: "Retry" }), " ");
    actions.append(el("button", { class: "btn danger", type: "button", "data-delete": job.urls.api, "data-name": job.name, title: "Delete the recording and its report", text: "Delete" }));
    return el("tr", { "data-job": job.id, "data-state": job.state },
      el("td", { class: "name" }, el("a", { href: job.urls.page, text: job.name }), el("div", { class: "muted small", text: fmtSize(job.size_bytes) })),
      el("td", { class: "small", text: fmtDate(job.created_at) }),
      el("td", { class: "small", text: job.duration_s ? fmtDuration(job.duration_s) : "" }),
      status, verdict, actions);
  }

  async function refreshHistory() {
    if (!history) return;
    let data;
    try { data = await api("GET", "/api/jobs"); } catch (e) { schedulePoll(); return; }
    const body = history.querySelector("tbody");
    body.replaceChildren(...data.jobs.map(renderRow));
    history.hidden = data.jobs.length === 0;
    document.getElementById("history-empty").hidden = data.jobs.length !== 0;
    document.getElementById("history-count").textContent = data.jobs.length + " total";
    if (data.jobs.some((j) => j.state === "queued" || j.state === "running") || uploading > 0) schedulePoll();
  }

  function schedulePoll() {
    if (pollTimer) return;
    pollTimer = window.setTimeout(() => { pollTimer = null; refreshHistory(); }, POLL_MS);
  }

  function uploadFile(file) {
    const list = document.getElementById("upload-list");
    const maxBytes = Number(form.getAttribute("data-max-bytes"));
    const bar = el("span", { style: "width:0%" });
    const detail = el("div", { class: "small muted detail", text: "Waiting\u2026" });
    const item = el("div", { class: "upload-item" },
      el("div", {}, el("div", { class: "name", text: file.name }), detail),
      el("div", { class: "progress" }, bar));
    list.prepend(item);
    if (file.size > maxBytes) {
      item.classList.add("error");
      detail.textContent = "Too large: " + fmtSize(file.size) + " (limit " + fmtSize(maxBytes) + ")";
      return;
    }
    uploading++;
    const xhr = new XMLHttpRequest();
    const speakerView = document.getElementById("speaker-view");
    const endpoint = form.getAttribute("data-endpoint") + (speakerView ? "?speaker_view=" + (speakerView.checked ? "1" : "0") : "");
    xhr.open("POST", endpoint);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("X-File-Name", encodeURIComponent(file.name));
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.floor((100 * e.loaded) / e.total);
      bar.style.width = pct + "%";
      detail.textContent = "Uploading " + pct + "% of " + fmtSize(e.total);
    };
    xhr.upload.onload = () => { detail.textContent = "Checking the file\u2026"; };
    xhr.onload = () => {
      uploading--;
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 201) {
        bar.style.width = "100%";
        detail.replaceChildren("Uploaded \u00b7 analysis queued \u00b7 ", el("a", { href: data.urls.page, text: "follow progress" }));
      } else {
        item.classList.add("error");
        detail.textContent = "Not accepted: " + (data.detail || xhr.status + " " + xhr.statusText);
      }
      refreshHistory();
    };
    xhr.onerror = () => { uploading--; item.classList.add("error"); detail.textContent = "Upload failed: the connection was lost."; };
    xhr.send(file);
    schedulePoll();
  }

  if (form) {
    const input = document.getElementById("file-input");
    document.getElementById("pick-button").addEventListener("click", () => input.click());
    input.addEventListener("change", () => { Array.from(input.files).forEach(uploadFile); input.value = ""; });
    ["dragenter", "dragover"].forEach((t) => form.addEventListener(t, (e) => { e.preventDefault(); form.classList.add("over"); }));
    ["dragleave", "drop"].forEach((t) => form.addEventListener(t, (e) => { e.preventDefault(); form.classList.remove("over"); }));
    form.addEventListener("drop", (e) => Array.from(e.dataTransfer.files).forEach(uploadFile));
    // a file dropped next to the zone must not navigate away from the page
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());
    if (history && history.querySelector("tr[data-state=queued], tr[data-state=running]")) schedulePoll();
  }

  // ---- job page ----------------------------------------------------------------
  const jobCard = document.getElementById("job");
  if (jobCard) {
    const url = jobCard.getAttribute("data-api");
    const tick = async () => {
      let job;
      try { job = await api("GET", url); } catch (e) { window.setTimeout(tick, POLL_MS * 3); return; }
      if (job.state === "done") { window.location.reload(); return; }
      document.getElementById("job-state").textContent = STATE_LABEL[job.state] || job.state;
      document.getElementById("job-state").className = "badge tone-" + (job.state === "failed" ? "bad" : "neutral");
      document.getElementById("job-message").textContent = job.state === "queued" ? statusText(job) : job.message;
      document.getElementById("job-bar").style.width = job.percent + "%";
      document.getElementById("job-percent").textContent = job.percent + "%";
      document.getElementById("job-eta").textContent = job.eta_s !== null ? fmtEta(job.eta_s) : "";
      const err = document.getElementById("job-error");
      if (job.state === "failed") {
        err.hidden = false;
        err.replaceChildren(el("strong", { text: "The analysis failed: " }), job.error ? job.error.message : "unknown error");
        document.getElementById("retry-button").hidden = false;
        return;
      }
      window.setTimeout(tick, POLL_MS);
    };
    if (jobCard.getAttribute("data-state") !== "failed") tick();
  }
})();
