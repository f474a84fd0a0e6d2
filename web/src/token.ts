/**
 * The player token, as the bootstrap's link carries it: `https://gateway/#token=…` (in the
 * fragment, so it never reaches a server log or a Referer header).
 *
 *   const token = playerToken();  // string, or null for a view-only page
 *
 * The token is moved out of the address bar into this tab's sessionStorage, so a reload keeps
 * it and a copied address does not leak it.
 */
const KEY = "loco.token";

export function playerToken(): string | null {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get("token");
  if (given) {
    sessionStorage.setItem(KEY, given);
    fragment.delete("token");
    const rest = fragment.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }
  return sessionStorage.getItem(KEY);
}
