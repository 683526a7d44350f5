"""Five synthetic news pages, each in the shape of a common news-site layout.

Written for this project (no real site's markup): the article text is known, so tests can check
that it is extracted and that the navigation, ads, cookie banners and comments around it are not.
Each entry: file name -> (html, title, sentences that must be extracted, phrases that must not).
"""

from __future__ import annotations

BOILERPLATE = [
    "Subscribe to our newsletter",
    "We use cookies",
    "Most read",
    "Advertisement",
    "All rights reserved",
]

_NAV = """<nav class="site-nav"><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>
<li><a href="/business">Business</a></li><li><a href="/science">Science</a></li></ul></nav>"""
_FOOTER = """<footer><p>Copyright 2024 Example Media Group. All rights reserved.</p>
<p><a href="/privacy">Privacy</a> <a href="/terms">Terms</a></p></footer>"""
_COOKIES = """<div class="cookie-banner" role="dialog"><p>We use cookies to improve your
experience. <button>Accept all</button> <button>Settings</button></p></div>"""
_NEWSLETTER = """<form class="newsletter"><h3>Subscribe to our newsletter</h3>
<input type="email" placeholder="Your email"><button>Sign up</button></form>"""
_MOST_READ = """<aside class="most-read"><h3>Most read</h3><ol><li><a href="/a">Celebrity
chef opens a floating restaurant</a></li><li><a href="/b">Ten tips for a better night's
sleep</a></li></ol></aside>"""
_AD = '<div class="ad-slot"><span>Advertisement</span></div>'

BROADSHEET_SENTENCES = [
    "The city council voted on Tuesday to rebuild the harbour bridge, ending a debate that "
    "had divided the town for more than a decade.",
    "Engineers expect the new deck to carry twice the traffic of the old one while using "
    "a third less steel.",
    "Residents on both banks said they were relieved that the ferry would no longer be the "
    "only way across during repairs.",
]
BROADSHEET = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Harbour bridge to be rebuilt | The Daily Ledger</title>
<meta property="og:title" content="Harbour bridge to be rebuilt after decade of debate">
<meta name="author" content="Maria Keller">
<meta property="article:published_time" content="2024-03-05T08:00:00Z"></head>
<body>{_NAV}
<main><article>
<header><h1>Harbour bridge to be rebuilt after decade of debate</h1>
<p class="byline">By <address class="author">Maria Keller</address>,
<time datetime="2024-03-05">5 March 2024</time></p></header>
<p>{BROADSHEET_SENTENCES[0]}</p>
<h2>Twice the traffic</h2>
<p>{BROADSHEET_SENTENCES[1]} Construction will begin in the spring and last two years.</p>
<p>{BROADSHEET_SENTENCES[2]}</p>
</article>
{_MOST_READ}
</main>{_FOOTER}</body></html>
"""

TABLOID_SENTENCES = [
    "A retired lighthouse keeper has finished knitting a scarf long enough to wrap around "
    "the lighthouse he looked after for thirty years.",
    "The scarf, made from the wool of local sheep, took eleven winters and more than four "
    "hundred balls of yarn to complete.",
    "Visitors can see it on display in the harbour museum until the end of the summer season.",
]
TABLOID = f"""<!DOCTYPE html>
<html><head><title>Keeper knits giant scarf - Evening Flash</title>
<meta property="og:title" content="Lighthouse keeper knits a scarf as long as his lighthouse">
</head><body>
<div id="top">{_AD}<div class="logo">Evening Flash</div>{_NAV}</div>
<div id="content"><div class="col-main"><div class="story">
<h1 class="headline">Lighthouse keeper knits a scarf as long as his lighthouse</h1>
<div class="share"><ul><li>Share on social</li><li>Email</li><li>Print</li></ul></div>
<div class="story-body">
<p>{TABLOID_SENTENCES[0]}</p>
{_AD}
<p>{TABLOID_SENTENCES[1]}</p>
<p>{TABLOID_SENTENCES[2]}</p>
</div></div></div>
<div class="col-side">{_MOST_READ}{_AD}</div></div>
{_FOOTER}</body></html>
"""

LIVE_BLOG_SENTENCES = [
    "Polls have now closed in all twelve districts and counting has begun in the town hall.",
    "Turnout reached sixty-eight percent, the highest figure recorded since the district "
    "boundaries were redrawn.",
    "The first results are expected shortly after midnight, according to the returning officer.",
]
LIVE_BLOG = f"""<!DOCTYPE html>
<html lang="en"><head><title>Election night live: counting under way | Northern Courier</title>
<meta property="og:title" content="Election night live: counting under way">
<meta name="author" content="Live desk">
</head><body>{_COOKIES}{_NAV}
<main id="liveblog"><h1>Election night live: counting under way</h1>
<section class="update"><h2><time>22:05</time> Polls closed</h2>
<p>{LIVE_BLOG_SENTENCES[0]}</p></section>
<section class="update"><h2><time>22:40</time> Record turnout</h2>
<p>{LIVE_BLOG_SENTENCES[1]}</p></section>
<section class="update"><h2><time>23:15</time> Results timing</h2>
<p>{LIVE_BLOG_SENTENCES[2]}</p></section>
</main>{_NEWSLETTER}{_FOOTER}</body></html>
"""

MAGAZINE_SENTENCES = [
    "For three centuries the salt marshes of the estuary were drained, ploughed and forgotten.",
    "Now a handful of farmers are letting the tide back in, and the birds have followed.",
    "The return of the avocet, absent for a hundred years, surprised even the most hopeful "
    "of the volunteers who count them each spring.",
]
MAGAZINE = f"""<!DOCTYPE html>
<html lang="en"><head><title>The marsh comes back - Longform Quarterly</title>
<meta property="og:title" content="The marsh comes back">
<meta property="og:site_name" content="Longform Quarterly">
<script type="application/ld+json">{{"@context": "https://schema.org", "@type": "NewsArticle",
"headline": "The marsh comes back", "author": {{"@type": "Person", "name": "Tom Ashdown"}},
"datePublished": "2024-06-01"}}</script>
</head><body>{_NAV}
<article class="longread">
<div class="hero"><h1>The marsh comes back</h1><p class="standfirst">How farmers let the sea
in.</p></div>
<p>{MAGAZINE_SENTENCES[0]}</p>
<p>{MAGAZINE_SENTENCES[1]}</p>
<figure><img src="avocet.jpg" alt="An avocet">
<figcaption>An avocet feeding at low tide.</figcaption></figure>
<h2>The birds return</h2>
<p>{MAGAZINE_SENTENCES[2]}</p>
<blockquote><p>We thought we would wait twenty years. It took three.</p></blockquote>
</article>
<section id="comments"><h3>Comments</h3>
<div class="comment"><p>Great read, thanks!</p></div></section>
{_NEWSLETTER}{_FOOTER}</body></html>
"""

WIRE_SENTENCES = [
    "GENEVA (Wire) - Global shipments of solar panels rose by a fifth last year, an industry "
    "group said on Monday.",
    "The group said falling prices for polysilicon made the panels cheaper to build than at "
    "any time since records began.",
]
WIRE = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Solar panel shipments rise by a fifth | Wire</title>
<meta property="og:title" content="Solar panel shipments rise by a fifth, industry group says">
<meta name="author" content="Wire staff">
</head><body>{_COOKIES}{_NAV}
<div class="container"><div class="article" itemscope itemtype="https://schema.org/NewsArticle">
<h1 itemprop="headline">Solar panel shipments rise by a fifth, industry group says</h1>
<div itemprop="articleBody">
<p>{WIRE_SENTENCES[0]}</p>
<p>{WIRE_SENTENCES[1]}</p>
<table><tr><th>Region</th><th>Gigawatts</th></tr>
<tr><td>Asia</td><td>310</td></tr><tr><td>Europe</td><td>72</td></tr>
<tr><td>Americas</td><td>58</td></tr></table>
<p>Reporting by Wire staff; editing by the Geneva desk.</p>
</div></div>{_NEWSLETTER}</div>{_FOOTER}</body></html>
"""

LAYOUTS: dict[str, tuple[str, str, list[str]]] = {
    "news-broadsheet.html": (
        BROADSHEET,
        "Harbour bridge to be rebuilt after decade of debate",
        BROADSHEET_SENTENCES,
    ),
    "news-tabloid.html": (
        TABLOID,
        "Lighthouse keeper knits a scarf as long as his lighthouse",
        TABLOID_SENTENCES,
    ),
    "news-liveblog.html": (
        LIVE_BLOG,
        "Election night live: counting under way",
        LIVE_BLOG_SENTENCES,
    ),
    "news-magazine.html": (MAGAZINE, "The marsh comes back", MAGAZINE_SENTENCES),
    "news-wire.html": (
        WIRE,
        "Solar panel shipments rise by a fifth, industry group says",
        WIRE_SENTENCES,
    ),
}
