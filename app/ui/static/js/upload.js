// Uploads: drag-and-drop or the file picker, many files at once, one outcome line per file;
// background uploads (?wait=false) show the job's progress until it is done.
import { ApiError, api, collectionPath } from "./api.js";
import { $, clear, el } from "./dom.js";

const POLL_FIRST_MS = 300;
const POLL_MAX_MS = 3000; // polls slow down, so a long job spends little of a rate limit

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class Uploads {
  constructor(page) {
    this.page = page;
    const input = $("upload-input");
    input.addEventListener("change", () => {
      const files = [...input.files];
      input.value = "";
      this.upload(files);
    });
    const zone = $("drop-zone");
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      this.upload([...event.dataTransfer.files]);
    });
  }

  async upload(files) {
    if (!files.length) return;
    const collection = this.page.collection;
    if (!collection) {
      this.page.fail(new Error("pick or create a collection first"));
      return;
    }
    const background = $("upload-background").checked;
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    clear($("upload-results"));
    this.page.clearAlert();
    this.page.status(`Uploading ${files.length} file${files.length === 1 ? "" : "s"} to ${collection}…`);
    let answer;
    try {
      answer = await api("POST", collectionPath(collection, "/documents"), {
        form,
        query: background ? { wait: "false" } : {},
      });
    } catch (error) {
      // Every file failed: the problem body still lists each file's reason.
      const failed = error instanceof ApiError ? error.detail.files : null;
      if (failed) this.showOutcomes(failed);
      this.page.status("");
      this.page.fail(error);
      await this.page.documents.refresh();
      return;
    }
    if (answer.status === 202) await this.follow(answer.body);
    else this.showOutcomes(answer.body.files);
    await this.page.documents.refresh();
  }

  showOutcomes(files) {
    const list = clear($("upload-results"));
    for (const file of files) {
      const detail = file.status === "failed" ? "" : `${file.chunks} chunk${file.chunks === 1 ? "" : "s"}`;
      list.append(
        el(
          "li",
          { class: `outcome ${file.status}`, "data-status": file.status },
          el("span", { class: `badge ${file.status}` }, file.status),
          el("span", { class: "name" }, file.filename),
          detail ? ` — ${detail}` : "",
          file.error ? el("span", { class: "reason" }, file.error.message) : "",
        ),
      );
    }
    const failed = files.filter((f) => f.status === "failed").length;
    this.page.status(`${files.length - failed} of ${files.length} file${files.length === 1 ? "" : "s"} ingested${failed ? `, ${failed} failed` : ""}.`);
  }

  /** Poll a background job, showing its progress, until it has succeeded or failed. */
  async follow(job) {
    const box = $("job");
    box.hidden = false;
    let delay = POLL_FIRST_MS;
    for (;;) {
      this.showJob(job);
      if (job.state === "succeeded" || job.state === "failed") break;
      await sleep(delay);
      delay = Math.min(POLL_MAX_MS, delay * 1.5);
      try {
        job = (await api("GET", `/jobs/${encodeURIComponent(job.id)}`)).body;
      } catch (error) {
        if (error instanceof ApiError && error.status === 429) {
          delay = Math.max(delay, 1000 * (error.detail.retry_after || 1));
          continue; // rate-limited: the job runs on; ask again later
        }
        this.page.fail(error);
        return;
      }
    }
    this.showOutcomes(job.files);
    if (job.error) this.page.fail(new Error(`The background upload failed: ${job.error}`));
  }

  showJob(job) {
    const progress = $("job-progress");
    progress.max = Math.max(1, job.files_total);
    progress.value = job.files_done;
    $("job-text").textContent =
      `${job.state}: ${job.files_done} of ${job.files_total} files, ${job.chunks_embedded} chunks embedded`;
    $("job").dataset.state = job.state;
  }
}
