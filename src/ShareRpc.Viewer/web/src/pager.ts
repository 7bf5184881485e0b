// Paged lists: only one page of a list is ever in the DOM, so a share with 100,000 ops or documents
// renders as fast as one with 50. A pager that "follows" stays on the last page as the list grows.

import { h } from "./dom.js";

export class Paging {
  /** Page index; null: follow the last page. */
  page: number | null;

  constructor(
    readonly perPage: number,
    followLast: boolean,
  ) {
    this.page = followLast ? null : 0;
  }

  /** [first, end) of the page to show, clamped to the list. */
  window(total: number, followLast: boolean): { first: number; end: number; page: number; pages: number } {
    const pages = Math.max(1, Math.ceil(total / this.perPage));
    let page = this.page ?? (followLast ? pages - 1 : 0);
    page = Math.min(Math.max(page, 0), pages - 1);
    const first = page * this.perPage;
    return { first, end: Math.min(total, first + this.perPage), page, pages };
  }
}

/** "items 51–100 of 240" with first / previous / next / last buttons; `rerender` after a move. */
export function pager(what: string, paging: Paging, total: number, followLast: boolean, rerender: () => void, name: string): HTMLElement {
  const w = paging.window(total, followLast);
  const go = (page: number) => () => {
    paging.page = followLast && page >= w.pages - 1 ? null : page;
    rerender();
  };
  const button = (label: string, title: string, page: number, enabled: boolean, role: string) =>
    h("button", { attrs: enabled ? { type: "button", title } : { type: "button", title, disabled: "" }, data: { go: role }, onclick: go(page) }, label);
  const label = total === 0 ? `no ${what}` : `${what} ${(w.first + 1).toLocaleString("en")}–${w.end.toLocaleString("en")} of ${total.toLocaleString("en")}`;
  return h(
    "div",
    { class: "pager", data: { pager: name, page: String(w.page + 1), pages: String(w.pages), total: String(total) } },
    button("«", "first page", 0, w.page > 0, "first"),
    button("‹", "previous page", w.page - 1, w.page > 0, "prev"),
    h("span", { class: "pager-label" }, label),
    button("›", "next page", w.page + 1, w.page < w.pages - 1, "next"),
    button("»", "last page", w.pages - 1, w.page < w.pages - 1, "last"),
  );
}
