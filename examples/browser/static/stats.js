// Fills the statistics page from the app's JSON endpoints.  Tests wait on the
// DOM state this sets (#stats[data-state=ready], #decade-books[data-loaded]).
"use strict";

const stats = document.getElementById("stats");
const decade = document.getElementById("decade");
const decadeBooks = document.getElementById("decade-books");

async function showDecade() {
  const response = await fetch(`${decade.dataset.url}?decade=${decade.value}`);
  const answer = await response.json();
  decadeBooks.replaceChildren(...answer.titles.map((title) => {
    const item = document.createElement("li");
    item.textContent = title;
    return item;
  }));
  decadeBooks.dataset.loaded = String(answer.decade);
}

async function showStats() {
  const response = await fetch(stats.dataset.url);
  const answer = await response.json();
  stats.textContent = `${answer.count} books, from ${answer.oldest} to ${answer.newest}.`;
  for (const start of answer.decades) {
    decade.add(new Option(`${start}s`, String(start)));
  }
  stats.dataset.state = "ready";
}

decade.addEventListener("change", showDecade);
showStats();
