// The callbridge console's one script (an ES module, loaded from this
// origin only: the CSP allows no inline script). Every page works without
// it except the live updates. Text from the server is inserted with
// textContent, never as HTML.

// Transcript start times seek the player.
document.addEventListener("click", (ev) => {
  const link = ev.target.closest("[data-seek]");
  const player = document.getElementById("player");
  if (!link || !player) return;
  ev.preventDefault();
  const at = Number(link.dataset.seek);
  if (Number.isFinite(at)) {
    player.currentTime = at;
    player.play().catch(() => {});
  }
});

// The live transcript of a call, over Server-Sent Events.
const live = document.getElementById("live-transcript");
if (live && window.EventSource) {
  const source = new EventSource(live.dataset.events);
  source.addEventListener("turn", (ev) => {
    const t = JSON.parse(ev.data);
    const li = document.createElement("li");
    li.className = t.speaker;
    // The call's event id, for a turn that came over the event bus.
    if (t.event) li.dataset.event = t.event;
    const b = document.createElement("b");
    b.textContent = t.speaker;
    li.append(t.at + " ", b, " " + t.text);
    live.append(li);
  });
  source.addEventListener("state", (ev) => {
    const state = document.getElementById("state");
    if (state) state.textContent = JSON.parse(ev.data).state;
  });
  source.addEventListener("end", () => {
    source.close();
    window.location.reload();
  });
}

// Pages that list live things refresh themselves.
const refresh = document.querySelector("[data-refresh]");
if (refresh) {
  const seconds = Number(refresh.dataset.refresh) || 5;
  setTimeout(() => window.location.reload(), seconds * 1000);
}

// A chosen CSV file is read into the import form's text area.
for (const input of document.querySelectorAll("input[data-csv-into]")) {
  input.addEventListener("change", async () => {
    const target = document.getElementById(input.dataset.csvInto);
    const file = input.files && input.files[0];
    if (target && file) target.value = await file.text();
  });
}
