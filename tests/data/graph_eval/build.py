"""Builds ``passages.jsonl``, the graph extraction evaluation set (adr/0024).

Every passage below was written for this project (none is copied from anywhere): news-like
prose, technical documentation, project READMEs and man-page style text, 15 of each, plus
news-16 (a review's leading-article defect, "the United States" typed SOFTWARE). The
annotations are written next to the text as surface strings; this script turns them into
character spans (every occurrence), checks that each annotated string really occurs, and finds
each relation's evidence sentence (the first sentence naming both ends).

    .venv/bin/python tests/data/graph_eval/build.py   # rewrites passages.jsonl

Entity types: PERSON, ORG, LOCATION, SOFTWARE, STANDARD, PROTOCOL, PRODUCT, LANGUAGE, EVENT.
Relation types (head -> tail): CREATED, MAINTAINS, FOUNDED, WORKS_FOR, ACQUIRED, USES,
SUPPORTS, PART_OF, LOCATED_IN, REPLACES, RELEASED, PARTNERED_WITH.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENTITY_TYPES = frozenset(
    "PERSON ORG LOCATION SOFTWARE STANDARD PROTOCOL PRODUCT LANGUAGE EVENT".split()
)
RELATION_TYPES = frozenset(
    "CREATED MAINTAINS FOUNDED WORKS_FOR ACQUIRED USES SUPPORTS PART_OF LOCATED_IN REPLACES "
    "RELEASED PARTNERED_WITH".split()
)
_SENTENCE = re.compile(
    r"(?<!\b[A-Z]\.)(?<=[.!?])\s+(?=[A-Z\"'(`-])|\n\s*\n|\n(?=\s*[-*] )|\n(?=[A-Z ]+\n)"
)


@dataclass(frozen=True)
class P:
    kind: str
    id: str
    text: str
    ents: str
    rels: str = ""


PASSAGES = [
    # --- news-like prose ---------------------------------------------------------------------
    P(
        "news",
        "news-01",
        "Linus Torvalds released the first version of Git in April 2005 after the Linux kernel "
        "community lost access to BitKeeper. Junio Hamano has maintained Git since July of that "
        "year.",
        "Linus Torvalds/PERSON; Git/SOFTWARE; Linux/SOFTWARE; BitKeeper/SOFTWARE; "
        "Junio Hamano/PERSON",
        "Linus Torvalds|CREATED|Git; Junio Hamano|MAINTAINS|Git",
    ),
    P(
        "news",
        "news-02",
        "Microsoft acquired GitHub for 7.5 billion dollars in 2018. Nat Friedman, who had run "
        "Xamarin, became the chief executive of GitHub after the deal closed in San Francisco.",
        "Microsoft/ORG; GitHub/ORG; Nat Friedman/PERSON; Xamarin/ORG; San Francisco/LOCATION",
        "Microsoft|ACQUIRED|GitHub; Nat Friedman|WORKS_FOR|GitHub",
    ),
    P(
        "news",
        "news-03",
        "The OpenJS Foundation announced on Tuesday that Node.js will join its impact program. "
        "The OpenJS Foundation, based in San Francisco, also hosts jQuery and Electron.",
        "OpenJS Foundation/ORG; Node.js/SOFTWARE; San Francisco/LOCATION; jQuery/SOFTWARE; "
        "Electron/SOFTWARE",
        "Node.js|PART_OF|OpenJS Foundation; OpenJS Foundation|LOCATED_IN|San Francisco; "
        "OpenJS Foundation|MAINTAINS|jQuery; OpenJS Foundation|MAINTAINS|Electron",
    ),
    P(
        "news",
        "news-04",
        "Oracle bought Sun Microsystems in 2010, and with it Java and MySQL. Michael Widenius, "
        "who wrote the original MySQL code, started MariaDB as a fork the same year.",
        "Oracle/ORG; Sun Microsystems/ORG; Java/LANGUAGE; MySQL/SOFTWARE; Michael Widenius/PERSON; "
        "MariaDB/SOFTWARE",
        "Oracle|ACQUIRED|Sun Microsystems; Michael Widenius|CREATED|MySQL; "
        "Michael Widenius|CREATED|MariaDB",
    ),
    P(
        "news",
        "news-05",
        "Guido van Rossum joined Microsoft in November 2020, a year after he retired from Dropbox. "
        "Van Rossum created Python while working at CWI in Amsterdam.",
        "Guido van Rossum/PERSON; Van Rossum/PERSON; Microsoft/ORG; Dropbox/ORG; "
        "Python/LANGUAGE; CWI/ORG; Amsterdam/LOCATION",
        "Guido van Rossum|WORKS_FOR|Microsoft; Van Rossum|CREATED|Python; CWI|LOCATED_IN|Amsterdam",
    ),
    P(
        "news",
        "news-06",
        "Red Hat, the open source company headquartered in Raleigh, was acquired by IBM in 2019. "
        "Red Hat continues to sponsor Fedora and maintains the Podman container engine.",
        "Red Hat/ORG; Raleigh/LOCATION; IBM/ORG; Fedora/SOFTWARE; Podman/SOFTWARE",
        "Red Hat|LOCATED_IN|Raleigh; IBM|ACQUIRED|Red Hat; Red Hat|MAINTAINS|Podman",
    ),
    P(
        "news",
        "news-07",
        "Mozilla laid off a quarter of its staff in August 2020. Mitchell Baker, who co-founded "
        "the Mozilla Foundation, said that Firefox would remain the focus of the organisation.",
        "Mozilla/ORG; Mitchell Baker/PERSON; Mozilla Foundation/ORG; Firefox/SOFTWARE",
        "Mitchell Baker|FOUNDED|Mozilla Foundation",
    ),
    P(
        "news",
        "news-08",
        "Amsel Kovacs, a security researcher at Trellis Labs in Vienna, found a flaw in OpenSSL "
        "that affected TLS connections. The OpenSSL Project released a fix within a week.",
        "Amsel Kovacs/PERSON; Trellis Labs/ORG; Vienna/LOCATION; OpenSSL/SOFTWARE; TLS/PROTOCOL; "
        "OpenSSL Project/ORG",
        "Amsel Kovacs|WORKS_FOR|Trellis Labs; Trellis Labs|LOCATED_IN|Vienna; "
        "OpenSSL Project|MAINTAINS|OpenSSL",
    ),
    P(
        "news",
        "news-09",
        "The Apache Software Foundation accepted Kafka as a top-level project in 2012. Jay Kreps, "
        "who wrote Kafka at LinkedIn, later founded Confluent with two colleagues.",
        "Apache Software Foundation/ORG; Kafka/SOFTWARE; Jay Kreps/PERSON; LinkedIn/ORG; "
        "Confluent/ORG",
        "Kafka|PART_OF|Apache Software Foundation; Jay Kreps|CREATED|Kafka; "
        "Jay Kreps|FOUNDED|Confluent; Jay Kreps|WORKS_FOR|LinkedIn",
    ),
    P(
        "news",
        "news-10",
        "Orveline Data, a startup from Lyon, raised 12 million euros to build a graph database "
        "called Tessellate. Its founder, Camille Roux, previously worked at Neo4j.",
        "Orveline Data/ORG; Lyon/LOCATION; Tessellate/SOFTWARE; Camille Roux/PERSON; Neo4j/ORG",
        "Orveline Data|LOCATED_IN|Lyon; Orveline Data|CREATED|Tessellate; "
        "Camille Roux|FOUNDED|Orveline Data; Camille Roux|WORKS_FOR|Neo4j",
    ),
    P(
        "news",
        "news-11",
        "Google released Kubernetes as open source in 2014 and donated it to the Cloud Native "
        "Computing Foundation a year later. Brendan Burns and Joe Beda designed the first version.",
        "Google/ORG; Kubernetes/SOFTWARE; Cloud Native Computing Foundation/ORG; "
        "Brendan Burns/PERSON; Joe Beda/PERSON",
        "Google|RELEASED|Kubernetes; Kubernetes|PART_OF|Cloud Native Computing Foundation; "
        "Brendan Burns|CREATED|Kubernetes; Joe Beda|CREATED|Kubernetes",
    ),
    P(
        "news",
        "news-12",
        "The European Commission fined Qualcomm in Brussels on Thursday. Margrethe Vestager said "
        "that the chip maker had paid Apple to use only its modems.",
        "European Commission/ORG; Qualcomm/ORG; Brussels/LOCATION; Margrethe Vestager/PERSON; "
        "Apple/ORG",
        "",
    ),
    P(
        "news",
        "news-13",
        "Richard Stallman founded the Free Software Foundation in 1985 to support the GNU Project. "
        "The FSF, based in Boston, still publishes the GNU General Public License.",
        "Richard Stallman/PERSON; Free Software Foundation/ORG; GNU Project/ORG; FSF/ORG; "
        "Boston/LOCATION; GNU General Public License/STANDARD",
        "Richard Stallman|FOUNDED|Free Software Foundation; FSF|LOCATED_IN|Boston; "
        "FSF|RELEASED|GNU General Public License",
    ),
    P(
        "news",
        "news-14",
        "Ilsa Brenner left Valdero Systems in Munich to lead the storage team at Cobalt Cloud. "
        "Valdero Systems makes the Halyard backup appliance, which uses ZFS.",
        "Ilsa Brenner/PERSON; Valdero Systems/ORG; Munich/LOCATION; Cobalt Cloud/ORG; "
        "Halyard/PRODUCT; ZFS/SOFTWARE",
        "Ilsa Brenner|WORKS_FOR|Cobalt Cloud; Valdero Systems|LOCATED_IN|Munich; "
        "Valdero Systems|CREATED|Halyard; Halyard|USES|ZFS",
    ),
    P(
        "news",
        "news-15",
        "At KubeCon in Amsterdam, Grafana Labs announced that Loki now supports OpenTelemetry. "
        "Raj Dutt, the chief executive of Grafana Labs, spoke in the opening keynote.",
        "KubeCon/EVENT; Amsterdam/LOCATION; Grafana Labs/ORG; Loki/SOFTWARE; "
        "OpenTelemetry/STANDARD; Raj Dutt/PERSON",
        "KubeCon|LOCATED_IN|Amsterdam; Loki|SUPPORTS|OpenTelemetry; "
        "Raj Dutt|WORKS_FOR|Grafana Labs; Grafana Labs|MAINTAINS|Loki",
    ),
    # A review found "the Nordic Salt Company" and "the United States" typed SOFTWARE: the
    # model's spans keep the article, and a lower-case start read as a program's name.
    P(
        "news",
        "news-16",
        "The Nordic Salt Company mines rock salt near Kiruna and ships it to the United States. "
        "Astrid Holm founded the Nordic Salt Company in 1962. Salt mining in the United States "
        "is older than the company.",
        "Nordic Salt Company/ORG; Kiruna/LOCATION; United States/LOCATION; Astrid Holm/PERSON",
        "Astrid Holm|FOUNDED|Nordic Salt Company",
    ),
    # --- technical documentation -------------------------------------------------------------
    P(
        "docs",
        "docs-01",
        "PostgreSQL supports the SQL:2016 JSON functions and stores documents in the jsonb type. "
        "Clients connect over TCP on port 5432 or through a Unix socket in /var/run/postgresql.",
        "PostgreSQL/SOFTWARE; SQL:2016/STANDARD; TCP/PROTOCOL",
        "PostgreSQL|SUPPORTS|SQL:2016",
    ),
    P(
        "docs",
        "docs-02",
        "Nginx terminates TLS 1.3 and forwards requests to the application over HTTP/1.1. "
        "Set proxy_read_timeout to 60s when the upstream streams large responses.",
        "Nginx/SOFTWARE; TLS 1.3/PROTOCOL; HTTP/1.1/PROTOCOL",
        "Nginx|SUPPORTS|TLS 1.3; Nginx|USES|HTTP/1.1",
    ),
    P(
        "docs",
        "docs-03",
        "Redis replicates data asynchronously from the primary to its replicas. Redis Sentinel "
        "watches the primary and promotes a replica when it fails.",
        "Redis/SOFTWARE; Redis Sentinel/SOFTWARE",
        "Redis Sentinel|PART_OF|Redis",
    ),
    P(
        "docs",
        "docs-04",
        "The gateway validates JSON Web Tokens signed with Ed25519 keys, as described in RFC 8037. "
        "Keys are published at /.well-known/jwks.json in the JWK Set format.",
        "JSON Web Tokens/STANDARD; Ed25519/STANDARD; RFC 8037/STANDARD; JWK Set/STANDARD",
        "JSON Web Tokens|USES|Ed25519",
    ),
    P(
        "docs",
        "docs-05",
        "RabbitMQ implements AMQP 0-9-1 and also speaks MQTT and STOMP through plugins. "
        "Quorum queues replicate messages with the Raft consensus algorithm.",
        "RabbitMQ/SOFTWARE; AMQP 0-9-1/PROTOCOL; MQTT/PROTOCOL; STOMP/PROTOCOL; Raft/STANDARD",
        "RabbitMQ|SUPPORTS|AMQP 0-9-1; RabbitMQ|SUPPORTS|MQTT; RabbitMQ|SUPPORTS|STOMP",
    ),
    P(
        "docs",
        "docs-06",
        "Qdrant stores vectors in segments and indexes them with HNSW. The Python client talks to "
        "the server over gRPC or REST, and both expose the same collections API.",
        "Qdrant/SOFTWARE; HNSW/STANDARD; Python/LANGUAGE; gRPC/PROTOCOL; REST/PROTOCOL",
        "Qdrant|USES|HNSW",
    ),
    P(
        "docs",
        "docs-07",
        "Neo4j stores the graph as nodes and relationships and answers Cypher queries. Drivers "
        "connect with the Bolt protocol on port 7687.",
        "Neo4j/SOFTWARE; Cypher/LANGUAGE; Bolt/PROTOCOL",
        "Neo4j|SUPPORTS|Cypher",
    ),
    P(
        "docs",
        "docs-08",
        "OpenSSH replaced rsh and telnet for remote logins in most Unix systems. It supports "
        "ECDSA and Ed25519 host keys and the SSH-2 protocol only.",
        "OpenSSH/SOFTWARE; rsh/SOFTWARE; telnet/PROTOCOL; Unix/SOFTWARE; ECDSA/STANDARD; "
        "Ed25519/STANDARD; SSH-2/PROTOCOL",
        "OpenSSH|REPLACES|rsh; OpenSSH|REPLACES|telnet; OpenSSH|SUPPORTS|ECDSA; "
        "OpenSSH|SUPPORTS|Ed25519; OpenSSH|SUPPORTS|SSH-2",
    ),
    P(
        "docs",
        "docs-09",
        "The X Window System, also called X11, draws windows over a network protocol. Wayland "
        "replaces X11 on many desktops, and XWayland runs old X11 programs inside it.",
        "X Window System/SOFTWARE; X11/SOFTWARE; Wayland/PROTOCOL; XWayland/SOFTWARE",
        "Wayland|REPLACES|X11; XWayland|PART_OF|Wayland",
    ),
    P(
        "docs",
        "docs-10",
        "systemd starts services in parallel and tracks their processes with cgroups. The "
        "journald daemon, part of systemd, collects logs from every unit.",
        "systemd/SOFTWARE; cgroups/SOFTWARE; journald/SOFTWARE",
        "systemd|USES|cgroups; journald|PART_OF|systemd",
    ),
    P(
        "docs",
        "docs-11",
        "SQLite writes every transaction to a write-ahead log when WAL mode is on. D. Richard Hipp "
        "wrote SQLite in 2000, and the SQLite Consortium funds its development.",
        "SQLite/SOFTWARE; D. Richard Hipp/PERSON; SQLite Consortium/ORG",
        "D. Richard Hipp|CREATED|SQLite; SQLite Consortium|MAINTAINS|SQLite",
    ),
    P(
        "docs",
        "docs-12",
        "HTTP/2 multiplexes streams over one TCP connection, while HTTP/3 runs over QUIC. The "
        "IETF published QUIC as RFC 9000 in 2021.",
        "HTTP/2/PROTOCOL; TCP/PROTOCOL; HTTP/3/PROTOCOL; QUIC/PROTOCOL; IETF/ORG; "
        "RFC 9000/STANDARD",
        "HTTP/2|USES|TCP; HTTP/3|USES|QUIC; IETF|RELEASED|QUIC",
    ),
    P(
        "docs",
        "docs-13",
        "The document service stores chunks in MongoDB and reads them with the PyMongo driver. "
        "In development it falls back to SQLite, and the chunks are compressed with zstd.",
        "MongoDB/SOFTWARE; PyMongo/SOFTWARE; SQLite/SOFTWARE; zstd/SOFTWARE",
        "",
    ),
    P(
        "docs",
        "docs-14",
        "Unicode assigns every character a code point, and UTF-8 encodes code points in one to "
        "four bytes. Ken Thompson and Rob Pike designed UTF-8 in 1992 at Bell Labs.",
        "Unicode/STANDARD; UTF-8/STANDARD; Ken Thompson/PERSON; Rob Pike/PERSON; Bell Labs/ORG",
        "Ken Thompson|CREATED|UTF-8; Rob Pike|CREATED|UTF-8; UTF-8|PART_OF|Unicode",
    ),
    P(
        "docs",
        "docs-15",
        "Prometheus scrapes metrics over HTTP and stores them in its own time series database. "
        "Alertmanager, a separate component of Prometheus, sends the alerts to Slack or PagerDuty.",
        "Prometheus/SOFTWARE; HTTP/PROTOCOL; Alertmanager/SOFTWARE; Slack/SOFTWARE; "
        "PagerDuty/SOFTWARE",
        "Prometheus|USES|HTTP; Alertmanager|PART_OF|Prometheus",
    ),
    # --- READMEs -------------------------------------------------------------------------------
    P(
        "readme",
        "readme-01",
        "# fastgrep\n\nfastgrep is a line search tool written in Rust. It uses the regex crate "
        "and respects .gitignore files.\n\nInstall it with `cargo install fastgrep` (version "
        "^1.4.2 or later).",
        "fastgrep/SOFTWARE; Rust/LANGUAGE; regex/SOFTWARE",
        "fastgrep|USES|Rust; fastgrep|USES|regex",
    ),
    P(
        "readme",
        "readme-02",
        "## Security\n\nThe project is maintained by the OpenJS Foundation. Report "
        "vulnerabilities to the security team through HackerOne, not in a public issue.",
        "OpenJS Foundation/ORG; HackerOne/ORG",
        "",
    ),
    P(
        "readme",
        "readme-03",
        "# Lumen\n\nLumen is a static site generator built on Jinja2 and Markdown. It was created "
        "by Tomas Lindqvist and is released under the MIT License.\n\nRun `lumen build --out "
        "dist/` to render the site.",
        "Lumen/SOFTWARE; Jinja2/SOFTWARE; Markdown/LANGUAGE; Tomas Lindqvist/PERSON; "
        "MIT License/STANDARD",
        "Lumen|USES|Jinja2; Lumen|USES|Markdown; Tomas Lindqvist|CREATED|Lumen",
    ),
    P(
        "readme",
        "readme-04",
        "# pgsync-lite\n\nStreams changes from PostgreSQL to Elasticsearch using logical "
        "replication. Requires Python 3.11 and psycopg 3.\n\nSee CONTRIBUTING.md before opening "
        "a pull request.",
        "pgsync-lite/SOFTWARE; PostgreSQL/SOFTWARE; Elasticsearch/SOFTWARE; Python/LANGUAGE; "
        "psycopg/SOFTWARE",
        "pgsync-lite|USES|PostgreSQL; pgsync-lite|USES|Elasticsearch; pgsync-lite|USES|psycopg",
    ),
    P(
        "readme",
        "readme-05",
        "## About\n\nHarbor Relay is developed by Norrsken Software in Gothenburg. It forwards "
        "webhooks from GitLab to Mattermost and signs each delivery with HMAC-SHA256.",
        "Harbor Relay/SOFTWARE; Norrsken Software/ORG; Gothenburg/LOCATION; GitLab/SOFTWARE; "
        "Mattermost/SOFTWARE; HMAC-SHA256/STANDARD",
        "Norrsken Software|CREATED|Harbor Relay; Norrsken Software|LOCATED_IN|Gothenburg; "
        "Harbor Relay|USES|HMAC-SHA256",
    ),
    P(
        "readme",
        "readme-06",
        "# tinyhttp\n\nA zero-dependency HTTP server for Node.js. tinyhttp supports HTTP/2 and "
        "WebSocket upgrades.\n\n```\nnpm install tinyhttp@2.1.0\n```\n\nMaintained by Vera "
        "Okafor.",
        "tinyhttp/SOFTWARE; Node.js/SOFTWARE; HTTP/2/PROTOCOL; WebSocket/PROTOCOL; "
        "Vera Okafor/PERSON",
        "tinyhttp|USES|Node.js; tinyhttp|SUPPORTS|HTTP/2; tinyhttp|SUPPORTS|WebSocket; "
        "Vera Okafor|MAINTAINS|tinyhttp",
    ),
    P(
        "readme",
        "readme-07",
        "## Requirements\n\n- Docker 24 or Podman 4\n- Kubernetes 1.29 for the Helm chart\n- "
        "an S3 bucket (MinIO works)\n\nThe chart deploys Keycloak for sign-in over OpenID Connect.",
        "Docker/SOFTWARE; Podman/SOFTWARE; Kubernetes/SOFTWARE; Helm/SOFTWARE; S3/PROTOCOL; "
        "MinIO/SOFTWARE; Keycloak/SOFTWARE; OpenID Connect/PROTOCOL",
        "Keycloak|SUPPORTS|OpenID Connect",
    ),
    P(
        "readme",
        "readme-08",
        "# Quillstone\n\nQuillstone converts DOCX and PDF files to Markdown. It was started at "
        "the University of Tartu by Mari Tamm and depends on pdfminer.six.",
        "Quillstone/SOFTWARE; DOCX/STANDARD; PDF/STANDARD; Markdown/LANGUAGE; "
        "University of Tartu/ORG; Mari Tamm/PERSON; pdfminer.six/SOFTWARE",
        "Quillstone|SUPPORTS|DOCX; Quillstone|SUPPORTS|PDF; Mari Tamm|CREATED|Quillstone; "
        "Mari Tamm|WORKS_FOR|University of Tartu; Quillstone|USES|pdfminer.six",
    ),
    P(
        "readme",
        "readme-09",
        "## Configuration\n\nSet `KGLAB_NEO4J_URL=bolt://localhost:7687` to use Neo4j. Without "
        "it, the service keeps the graph in SQLite under ./.kglab/graph.sqlite3.",
        "Neo4j/SOFTWARE; SQLite/SOFTWARE",
        "",
    ),
    P(
        "readme",
        "readme-10",
        "# vaultline\n\nvaultline rotates database credentials stored in HashiCorp Vault. It "
        "supports PostgreSQL and MySQL, and it was written by the platform team at Fennick Bank.",
        "vaultline/SOFTWARE; HashiCorp Vault/SOFTWARE; PostgreSQL/SOFTWARE; MySQL/SOFTWARE; "
        "Fennick Bank/ORG",
        "vaultline|USES|HashiCorp Vault; vaultline|SUPPORTS|PostgreSQL; "
        "vaultline|SUPPORTS|MySQL; Fennick Bank|CREATED|vaultline",
    ),
    P(
        "readme",
        "readme-11",
        "## Changelog\n\n- 3.2.0: drop support for Python 3.8; add Windows wheels\n- 3.1.4: fix "
        "`len=0 -` crash in the tokenizer (#812)\n\nThanks to Priya Raman for the Windows build.",
        "Python/LANGUAGE; Windows/SOFTWARE; Priya Raman/PERSON",
        "",
    ),
    P(
        "readme",
        "readme-12",
        "# Ferrite\n\nFerrite is a TOML parser for Go that follows the TOML 1.0 specification. "
        "It replaces the older burnt-toml package and is used by Caddy.",
        "Ferrite/SOFTWARE; TOML/LANGUAGE; Go/LANGUAGE; TOML 1.0/STANDARD; burnt-toml/SOFTWARE; "
        "Caddy/SOFTWARE",
        "Ferrite|SUPPORTS|TOML 1.0; Ferrite|REPLACES|burnt-toml; Caddy|USES|Ferrite",
    ),
    P(
        "readme",
        "readme-13",
        "## Acknowledgements\n\nThis work was funded by the Sovereign Tech Fund and the NLnet "
        "Foundation. Hosting is donated by Hetzner in Falkenstein.",
        "Sovereign Tech Fund/ORG; NLnet Foundation/ORG; Hetzner/ORG; Falkenstein/LOCATION",
        "Hetzner|LOCATED_IN|Falkenstein",
    ),
    P(
        "readme",
        "readme-14",
        "# mqtt-bridge\n\nBridges MQTT topics to Apache Kafka. Written in Java 21 and built with "
        "Gradle; the Docker image is published to GitHub Container Registry.",
        "mqtt-bridge/SOFTWARE; MQTT/PROTOCOL; Apache Kafka/SOFTWARE; Java/LANGUAGE; "
        "Gradle/SOFTWARE; Docker/SOFTWARE; GitHub Container Registry/PRODUCT",
        "mqtt-bridge|SUPPORTS|MQTT; mqtt-bridge|USES|Apache Kafka; mqtt-bridge|USES|Java; "
        "mqtt-bridge|USES|Gradle",
    ),
    P(
        "readme",
        "readme-15",
        "# Otterdocs\n\nOtterdocs renders API reference pages from OpenAPI 3.1 files. It is "
        "maintained by Brightwater Labs and used by the Jellyfin project.",
        "Otterdocs/SOFTWARE; OpenAPI 3.1/STANDARD; Brightwater Labs/ORG; Jellyfin/SOFTWARE",
        "Otterdocs|SUPPORTS|OpenAPI 3.1; Brightwater Labs|MAINTAINS|Otterdocs; "
        "Jellyfin|USES|Otterdocs",
    ),
    # --- man-page style text -------------------------------------------------------------------
    P(
        "man",
        "man-01",
        "NAME\n    tar - an archiving utility\n\nDESCRIPTION\n    GNU tar saves many files "
        "together into a single archive. It can compress the archive with gzip, bzip2 or xz when "
        "given -z, -j or -J.",
        "tar/SOFTWARE; GNU tar/SOFTWARE; gzip/SOFTWARE; bzip2/SOFTWARE; xz/SOFTWARE",
        "GNU tar|USES|gzip; GNU tar|USES|bzip2; GNU tar|USES|xz",
    ),
    P(
        "man",
        "man-02",
        "NAME\n    ssh - OpenSSH remote login client\n\nDESCRIPTION\n    ssh connects to a host "
        "and logs in with the SSH protocol. It reads ~/.ssh/config and supports ECDSA keys.",
        "ssh/SOFTWARE; OpenSSH/SOFTWARE; SSH/PROTOCOL; ECDSA/STANDARD",
        "ssh|PART_OF|OpenSSH; ssh|USES|SSH; ssh|SUPPORTS|ECDSA",
    ),
    P(
        "man",
        "man-03",
        "NAME\n    curl - transfer a URL\n\nDESCRIPTION\n    curl transfers data with HTTP, HTTPS, "
        "FTP and SFTP. It uses libcurl, and Daniel Stenberg maintains both.",
        "curl/SOFTWARE; HTTP/PROTOCOL; HTTPS/PROTOCOL; FTP/PROTOCOL; SFTP/PROTOCOL; "
        "libcurl/SOFTWARE; Daniel Stenberg/PERSON",
        "curl|SUPPORTS|HTTP; curl|SUPPORTS|HTTPS; curl|SUPPORTS|FTP; curl|SUPPORTS|SFTP; "
        "curl|USES|libcurl; Daniel Stenberg|MAINTAINS|curl; Daniel Stenberg|MAINTAINS|libcurl",
    ),
    P(
        "man",
        "man-04",
        "NAME\n    git-clone - Clone a repository into a new directory\n\nDESCRIPTION\n    Clones "
        "a repository over SSH or HTTPS. With --depth=1 only the latest commit is fetched. See "
        "https://git-scm.com/docs for more.",
        "git-clone/SOFTWARE; SSH/PROTOCOL; HTTPS/PROTOCOL",
        "git-clone|SUPPORTS|SSH; git-clone|SUPPORTS|HTTPS",
    ),
    P(
        "man",
        "man-05",
        "ENVIRONMENT\n    PATH    Directories searched for commands.\n    LANG    Locale used for "
        "messages; see locale(7).\n\nBash reads these variables at start-up, as POSIX requires.",
        "Bash/SOFTWARE; POSIX/STANDARD",
        "Bash|SUPPORTS|POSIX",
    ),
    P(
        "man",
        "man-06",
        "NAME\n    rsync - a fast, versatile, remote file-copying tool\n\nDESCRIPTION\n    rsync "
        "copies files over SSH by default. Andrew Tridgell and Paul Mackerras wrote rsync in 1996.",
        "rsync/SOFTWARE; SSH/PROTOCOL; Andrew Tridgell/PERSON; Paul Mackerras/PERSON",
        "rsync|USES|SSH; Andrew Tridgell|CREATED|rsync; Paul Mackerras|CREATED|rsync",
    ),
    P(
        "man",
        "man-07",
        "NAME\n    gpg - OpenPGP encryption and signing tool\n\nDESCRIPTION\n    gpg is the "
        "command line part of GnuPG. It implements the OpenPGP standard described in RFC 4880.",
        "gpg/SOFTWARE; OpenPGP/STANDARD; GnuPG/SOFTWARE; RFC 4880/STANDARD",
        "gpg|PART_OF|GnuPG; gpg|SUPPORTS|OpenPGP",
    ),
    P(
        "man",
        "man-08",
        "NAME\n    dig - DNS lookup utility\n\nDESCRIPTION\n    dig queries DNS name servers. It "
        "is part of BIND 9, which the Internet Systems Consortium maintains.",
        "dig/SOFTWARE; DNS/PROTOCOL; BIND 9/SOFTWARE; Internet Systems Consortium/ORG",
        "dig|USES|DNS; dig|PART_OF|BIND 9; Internet Systems Consortium|MAINTAINS|BIND 9",
    ),
    P(
        "man",
        "man-09",
        "NAME\n    journalctl - Print log entries from the systemd journal\n\nOPTIONS\n    -u, "
        "--unit=UNIT\n        Show messages for the specified systemd unit UNIT.\n    -n, "
        "--lines=10\n        Show the most recent entries.",
        "journalctl/SOFTWARE; systemd/SOFTWARE",
        "journalctl|PART_OF|systemd",
    ),
    P(
        "man",
        "man-10",
        "NAME\n    openssl-req - certificate request generation\n\nDESCRIPTION\n    Creates "
        "certificate requests in PKCS#10 format. OpenSSL reads its defaults from openssl.cnf, and "
        "X.509 certificates can be signed directly.",
        "openssl-req/SOFTWARE; PKCS#10/STANDARD; OpenSSL/SOFTWARE; X.509/STANDARD",
        "openssl-req|SUPPORTS|PKCS#10; OpenSSL|SUPPORTS|X.509",
    ),
    P(
        "man",
        "man-11",
        "NAME\n    psql - PostgreSQL interactive terminal\n\nDESCRIPTION\n    psql is a "
        "terminal-based front-end to PostgreSQL. It reads connection settings from PGHOST and "
        "PGPORT, and supports SSL.",
        "psql/SOFTWARE; PostgreSQL/SOFTWARE; SSL/PROTOCOL",
        "psql|PART_OF|PostgreSQL; psql|SUPPORTS|SSL",
    ),
    P(
        "man",
        "man-12",
        "NAME\n    ffmpeg - media converter\n\nDESCRIPTION\n    ffmpeg reads audio and video and "
        "writes them with codecs from libavcodec. It decodes H.264 and writes WebM for browsers.",
        "ffmpeg/SOFTWARE; libavcodec/SOFTWARE; H.264/STANDARD; WebM/STANDARD",
        "ffmpeg|USES|libavcodec; ffmpeg|SUPPORTS|H.264; ffmpeg|SUPPORTS|WebM",
    ),
    P(
        "man",
        "man-13",
        "NAME\n    npm-install - Install a package\n\nDESCRIPTION\n    npm install reads "
        "package.json and bundleDependencies[] and writes package-lock.json. npm is distributed "
        "with Node.js.",
        "npm-install/SOFTWARE; npm/SOFTWARE; Node.js/SOFTWARE",
        "npm-install|PART_OF|npm; npm|PART_OF|Node.js",
    ),
    P(
        "man",
        "man-14",
        "NAME\n    sqlite3 - A command line interface for SQLite version 3\n\nDESCRIPTION\n    "
        "sqlite3 lets a user run SQL statements against an SQLite database. The Debian Policy "
        "asks packages to ship this page.",
        "sqlite3/SOFTWARE; SQLite/SOFTWARE; SQL/LANGUAGE; Debian Policy/STANDARD",
        "sqlite3|PART_OF|SQLite; sqlite3|SUPPORTS|SQL",
    ),
    P(
        "man",
        "man-15",
        "NAME\n    xrandr - primitive command line interface to RandR extension\n\nDESCRIPTION\n"
        "    xrandr sets the size, orientation and reflection of the outputs of an X11 screen. It "
        "talks to the X server through the RandR extension.",
        "xrandr/SOFTWARE; RandR/PROTOCOL; X11/SOFTWARE",
        "xrandr|USES|RandR",
    ),
]


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence or block: enough to name a relation's evidence."""
    spans, start = [], 0
    for match in _SENTENCE.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def _occurrences(text: str, surface: str) -> list[tuple[int, int]]:
    pattern = re.compile(r"(?<![\w-])" + re.escape(surface) + r"(?![\w])")
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def build(passage: P) -> dict[str, object]:
    entities = []
    surfaces: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in passage.ents.split(";"))):
        surface, _, label = item.rpartition("/")
        if label not in ENTITY_TYPES:
            raise ValueError(f"{passage.id}: unknown entity type {label!r}")
        spans = _occurrences(passage.text, surface)
        if not spans:
            raise ValueError(f"{passage.id}: {surface!r} is not in the text")
        surfaces[surface] = label
        entities.append({"text": surface, "type": label, "spans": [list(s) for s in spans]})
    relations = []
    bounds = sentences(passage.text)
    topic = entities[0]["text"]
    for item in filter(None, (part.strip() for part in passage.rels.split(";"))):
        head, label, tail = item.split("|")
        if label not in RELATION_TYPES:
            raise ValueError(f"{passage.id}: unknown relation type {label!r}")
        if head not in surfaces or tail not in surfaces:
            raise ValueError(f"{passage.id}: relation {item!r} names an unannotated entity")
        # The sentence naming both ends; else (the passage's topic, its first entity, is a
        # pronoun there, "It supports ...", or left implicit as READMEs and man pages do,
        # "Clones a repository over SSH") the first sentence naming the other end.
        texts = [passage.text[s:e].strip() for s, e in bounds]
        named = tail if head == topic else head
        evidence = next(
            (t for t in texts if _occurrences(t, head) and _occurrences(t, tail)),
            next((t for t in texts if _occurrences(t, named)), None),
        )
        if evidence is None:
            raise ValueError(f"{passage.id}: no sentence names both ends of {item!r}")
        relations.append({"head": head, "type": label, "tail": tail, "evidence": evidence})
    return {
        "id": passage.id,
        "kind": passage.kind,
        "text": passage.text,
        "entities": entities,
        "relations": relations,
    }


def main() -> None:
    if len({p.id for p in PASSAGES}) != len(PASSAGES):
        raise ValueError("passage ids must be unique")
    lines, errors = [], []
    for passage in PASSAGES:
        try:
            lines.append(json.dumps(build(passage), ensure_ascii=False))
        except ValueError as error:
            errors.append(str(error))
    if errors:
        raise SystemExit("\n".join(errors))
    (HERE / "passages.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sys.stdout.write(f"{len(lines)} passages written to {HERE / 'passages.jsonl'}\n")


if __name__ == "__main__":
    main()
