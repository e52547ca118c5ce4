// The drawing page of `lenet-mnist serve`: no libraries, no network beyond this server.
// The drawing is sent as a PNG to /v1/images:predict, where the library prepares it
// exactly as it prepares a photo (crop, scale into 20x20, centre by mass in 28x28).
"use strict";

(function () {
  const canvas = document.getElementById("pad");
  const context = canvas.getContext("2d");
  const digitView = document.getElementById("digit");
  const confidenceView = document.getElementById("confidence");
  const barsView = document.getElementById("bars");
  const statusView = document.getElementById("status");
  const fileInput = document.getElementById("file");
  const preview = document.getElementById("preview");
  const PICTURE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp"];

  let drawing = false;
  let inked = false;
  let last = null;
  let request = 0; // answers to older requests than the latest are dropped

  function buildBars() {
    for (let d = 0; d < 10; d += 1) {
      const row = document.createElement("li");
      row.dataset.digit = String(d);
      row.innerHTML =
        '<span class="label"></span><span class="track"><span class="fill"></span></span>' +
        '<span class="value">&ndash;</span>';
      row.querySelector(".label").textContent = String(d);
      barsView.appendChild(row);
    }
  }

  function clearAnswer(message) {
    digitView.textContent = "?";
    confidenceView.textContent = message;
    for (const row of barsView.children) {
      row.classList.remove("best");
      row.querySelector(".fill").style.width = "0";
      row.querySelector(".value").textContent = "\u2013";
    }
  }

  function showAnswer(prediction) {
    const probabilities = prediction.probabilities;
    digitView.textContent = String(prediction.digit);
    const p = probabilities[prediction.digit];
    confidenceView.textContent = (100 * p).toFixed(1) + "% sure";
    barsView.querySelectorAll("li").forEach(function (row, d) {
      row.classList.toggle("best", d === prediction.digit);
      row.querySelector(".fill").style.width = (100 * probabilities[d]).toFixed(1) + "%";
      row.querySelector(".value").textContent = (100 * probabilities[d]).toFixed(1) + "%";
    });
  }

  function resetCanvas() {
    context.fillStyle = "#000";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.strokeStyle = "#fff";
    context.fillStyle = "#fff";
    context.lineCap = "round";
    context.lineJoin = "round";
    context.lineWidth = 20;
    inked = false;
  }

  async function ask(body, type) {
    const mine = ++request;
    statusView.textContent = "";
    try {
      const options = { method: "POST", body: body };
      // FormData bodies get their multipart Content-Type (with its boundary) from fetch.
      if (type) options.headers = { "Content-Type": type };
      const response = await fetch("/v1/images:predict", options);
      const answer = await response.json();
      if (mine !== request) return;
      if (!response.ok) {
        clearAnswer("No answer.");
        statusView.textContent = answer.error || "error " + response.status;
        return;
      }
      showAnswer(answer.predictions[0]);
    } catch (error) {
      if (mine === request) statusView.textContent = "The server did not answer: " + error;
    }
  }

  function predictDrawing() {
    if (!inked) return;
    canvas.toBlob(function (blob) {
      if (blob) ask(blob, "image/png");
    }, "image/png");
  }

  function point(event) {
    const box = canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) * canvas.width) / box.width,
      y: ((event.clientY - box.top) * canvas.height) / box.height,
    };
  }

  function dot(p) {
    context.beginPath();
    context.arc(p.x, p.y, context.lineWidth / 2, 0, 2 * Math.PI);
    context.fill();
  }

  function line(from, to) {
    context.beginPath();
    context.moveTo(from.x, from.y);
    context.lineTo(to.x, to.y);
    context.stroke();
  }

  canvas.addEventListener("pointerdown", function (event) {
    if (event.button !== 0) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    preview.hidden = true;
    drawing = true;
    inked = true;
    last = point(event);
    dot(last);
  });

  canvas.addEventListener("pointermove", function (event) {
    if (!drawing) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const each of events.length ? events : [event]) {
      const p = point(each);
      line(last, p);
      last = p;
    }
  });

  function stop(event) {
    if (!drawing) return;
    drawing = false;
    if (canvas.hasPointerCapture(event.pointerId)) canvas.releasePointerCapture(event.pointerId);
    predictDrawing();
  }

  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);

  document.getElementById("clear").addEventListener("click", function () {
    request += 1;
    resetCanvas();
    preview.hidden = true;
    statusView.textContent = "";
    clearAnswer("Draw a digit on the black square.");
  });

  fileInput.addEventListener("change", function () {
    const file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    resetCanvas();
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    clearAnswer("Reading " + file.name + "\u2026");
    if (PICTURE_TYPES.indexOf(file.type) < 0) {
      // Let the server say why; multipart carries no type of its own to refuse early.
      const form = new FormData();
      form.append("image", file);
      ask(form, null);
      return;
    }
    ask(file, file.type);
  });

  buildBars();
  resetCanvas();
  clearAnswer("Draw a digit on the black square.");
})();
