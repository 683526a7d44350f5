// The graph drawing (Cytoscape.js), loaded only by the views that draw: the first page stays small.

import cytoscape from "cytoscape";

const COLOURS = {
  PERSON: "#1f5fa8",
  ORG: "#8a3b12",
  GPE: "#2f6b2f",
  LOC: "#2f6b2f",
  PRODUCT: "#6b2f6b",
  EVENT: "#7a5a00",
};

export function drawGraph(container, { onSelect }) {
  const cy = cytoscape({
    container,
    minZoom: 0.2,
    maxZoom: 1.5,
    style: [
      {
        selector: "node",
        style: {
          label: "data(name)",
          "background-color": (node) => COLOURS[node.data("type")] || "#444",
          color: "#111",
          "font-size": 12,
          "text-valign": "bottom",
          "text-margin-y": 4,
          "text-background-color": "#fff",
          "text-background-opacity": 0.8,
          width: 18,
          height: 18,
        },
      },
      {
        selector: "edge",
        style: {
          width: (edge) => Math.min(1 + edge.data("weight"), 8),
          "line-color": "#8a8a8a",
          "curve-style": "bezier",
        },
      },
      { selector: "node.path", style: { "background-color": "#c2185b" } },
      { selector: "edge.path", style: { "line-color": "#c2185b", width: 5 } },
      { selector: ":selected", style: { "border-width": 3, "border-color": "#c2185b", "line-color": "#c2185b" } },
    ],
  });
  cy.on("tap", "node", (event) => onSelect("node", event.target.data()));
  cy.on("tap", "edge", (event) => onSelect("edge", event.target.data("relation")));
  const layout = () => cy.layout({ name: "cose", animate: false, randomize: false, nodeRepulsion: 9000 }).run();
  return {
    add(entities, relations) {
      const fresh = [];
      for (const entity of entities) {
        if (cy.getElementById(entity.id).empty()) fresh.push({ group: "nodes", data: { ...entity } });
      }
      cy.add(fresh);
      for (const relation of relations) {
        const id = `${relation.source}|${relation.target}`;
        const reverse = `${relation.target}|${relation.source}`;
        if (!cy.getElementById(id).empty() || !cy.getElementById(reverse).empty()) continue;
        if (cy.getElementById(relation.source).empty() || cy.getElementById(relation.target).empty()) continue;
        cy.add({ group: "edges", data: { id, source: relation.source, target: relation.target, weight: relation.weight || 1, relation } });
      }
      layout();
      cy.fit(undefined, 30);
      // What is drawn, readable without the canvas (tests, assistive tools).
      container.dataset.nodes = String(cy.nodes().length);
      container.dataset.edges = String(cy.edges().length);
    },
    focus(id) {
      const node = cy.getElementById(id);
      cy.elements().unselect();
      node.select();
    },
    highlightPath(ids) {
      cy.elements().removeClass("path");
      ids.forEach((id, index) => {
        cy.getElementById(id).addClass("path");
        if (index) {
          const a = ids[index - 1];
          cy.getElementById(`${a}|${id}`).addClass("path");
          cy.getElementById(`${id}|${a}`).addClass("path");
        }
      });
    },
    size: () => ({ nodes: cy.nodes().length, edges: cy.edges().length }),
    destroy: () => cy.destroy(),
  };
}
