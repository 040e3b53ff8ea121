"""Requests a writer might type to /dialogue: the fixed prompt sets of the validity measures.

Two sets, split by when and how they were written (a fixed rule, not a random draw):

- ``TUNING_PROMPTS``: the 100 requests the Fountain validity benchmark ran until 2026-12-03,
  in their old order. The heuristics that turn a request and the model's answer into
  Fountain (the word lists in config/screenplay_words.toml) were written with them in view:
  66 of the 77 words of the old role -> place list appeared in them, and 66 of 100 of these
  prompts contain a word of role_places as it is now (63 of its 73 words); 54 of 100 contain
  a word of places, 5 of 100 a word of time_words. Figures measured on them are in-sample.
  Tune on these (and on real requests), never on the held-out set.
- ``HELDOUT_PROMPTS``: 50 new requests written on 2026-12-03, after the word lists were
  frozen, to hold none of their words, and checked against them: 0 of 50 held-out prompts
  contain a word of role_places, 0 of 50 held-out prompts contain a word of places, 0 of 50
  held-out prompts contain a word of time_words. So derive_heading finds a place in none of
  them (it does in 94 of the 100 tuning prompts): on them the model names every scene's
  place itself, and the figure says how /dialogue does on requests the lists know nothing
  of, a harder case than requests naming a common place; read it as that, not as the
  share over all requests. The scene quality benchmark (benchmarks/scene_quality.py; its predecessor
  benchmarks/fountain_validity.py wrote benchmarks/samples/fountain_validity_heldout.json)
  and the training gate (the first ``training.eval_generations`` of them, from every model
  it compares, so a candidate and what serves are judged on the same requests, run after
  run; at most 50) measure on these.

"Contain a word": a lower-cased word of the whole prompt (situation, names and tone), with a
possessive 's and trailing s's stripped or not, is in the list; tests/training/
test_eval_prompts.py measures it and fails when the numbers above stop being true, so a word
added to the lists because a held-out prompt needs it cannot slip in unseen.
"""

# Situations from many genres, 0-3 requested characters, with and without a tone.
TUNING_PROMPTS = [
    "a detective corners her former partner in a rainy alley characters: Maya, Cole tone: tense",
    "two sisters argue about selling the family farm characters: June, Rose",
    "a chef confesses to burning the wedding cake characters: Luis, Priya tone: comic",
    "an astronaut talks to mission control as oxygen runs low characters: Dana, Hector tone: quiet dread",
    "a teenager asks his grandfather about the war characters: Sam tone: warm",
    "a landlord tries to evict a stubborn tenant who is a retired magician characters: Greta, Mr. Ives, Pip tone: farce",
    "a nurse and a patient play chess at midnight",
    "two thieves realise they robbed the same bank characters: Vic, Lou tone: comic",
    "a ghost asks a plumber to fix the pipes in an old mansion characters: Edith, Ray tone: whimsical",
    "a coach gives a halftime speech to a losing team in the locker room characters: Coach Burke tone: rousing",
    "a bride gets cold feet in the church vestry characters: Ella, Nora tone: tender",
    "a hacker negotiates with a ransomware gang over video call characters: Kit, Voss tone: tense",
    "a father teaches his daughter to drive on an empty highway characters: Dev, Anya tone: funny",
    "two soldiers share a cigarette in a trench before dawn characters: Tom, Harry tone: grim",
    "a waitress refuses to serve the mayor at a diner characters: Lorna, Mayor Pike",
    "a vampire applies for a night-shift job at a hospital characters: Vlad, Denise tone: deadpan",
    "an old couple plan a bank heist in their kitchen characters: Walt, Bea tone: comic",
    "a new intern discovers the company is a front for smugglers characters: Jess, Mr. Grant",
    "a fisherman finds a message in a bottle on the beach characters: Ike",
    "a queen interrogates a spy in the castle dungeon characters: Queen Maud, Fenn tone: cold",
    "two rival magicians meet backstage before a show characters: Zara, Lev tone: sly",
    "a lighthouse keeper hears a knock during a storm characters: Agnes, Stranger tone: eerie",
    "a teacher catches a student cheating on the final exam characters: Ms. Ortiz, Ben",
    "a robot asks its inventor what love is in the lab characters: Unit Nine, Dr. Hale tone: gentle",
    "a divorced couple meet at their son's school play characters: Mark, Ruth tone: bittersweet",
    "a pizza delivery guy is mistaken for a hitman characters: Gus, Sal tone: farce",
    "a jury foreman argues for acquittal in the jury room characters: Hal, Irene, Otto",
    "an explorer and her guide are lost in the jungle characters: Lucy, Mateo tone: desperate",
    "a comedian bombs on stage and argues with a heckler characters: Rita, Heckler",
    "a priest hears a confession from a famous thief characters: Father Quinn, Jojo tone: tense",
    "two kids build a fort and declare war on the neighbours characters: Milo, Tess tone: playful",
    "a ship's captain decides whether to abandon ship characters: Captain Reyes, Finch tone: urgent",
    "a widow meets her late husband's secret lover at the funeral characters: Clara, Simone",
    "a barber gives unwanted life advice to a customer characters: Sal, Kevin tone: comic",
    "a scientist reveals she cloned her cat characters: Dr. Ames, Paul",
    "an interviewer grills a politician live on air in a TV studio characters: Dana Cruz, Senator Bell tone: sharp",
    "two strangers are stuck in an elevator characters: Omar, Judy tone: awkward",
    "a knight refuses to fight a dragon characters: Sir Alden, Dragon tone: absurd",
    "a mother and son clean out her late father's attic characters: Carol, Jake tone: melancholy",
    "a cop pulls over a car driven by a dog characters: Officer Dunn tone: absurd",
    "a novelist confronts a fan who stole her manuscript characters: Iris, Wendell",
    "two astronauts argue over the last ration on a space station characters: Lee, Ola tone: quiet dread",
    "a wedding planner must calm two feuding families characters: Marco, Aunt Gloria, Uncle Sid tone: farce",
    "a boxer's trainer begs him to throw the fight characters: Rocco, Manny tone: gritty",
    "a little girl interviews a ghost for a school project characters: Poppy, Ghost tone: sweet",
    "an art forger is caught by the museum curator characters: Felix, Dr. Lang",
    "two old friends reunite at a train station after twenty years characters: Ada, Ruth tone: warm",
    "a talk show host realises his guest is his long-lost brother characters: Jim, Carl",
    "a farmer bargains with an alien in a cornfield characters: Earl, Zyx tone: comic",
    "a surgeon has doubts minutes before an operation characters: Dr. Patel, Nurse Kim tone: tense",
    "a bartender talks a customer out of revenge characters: Moe, Danny",
    "a chess prodigy refuses to play her father characters: Lina, Viktor tone: cold",
    "a movie star hides from paparazzi in a laundromat characters: Chase, Dot tone: comic",
    "two monks argue about a broken vow of silence characters: Brother Ansel, Brother Tobin tone: dry",
    "a journalist meets a whistleblower in a parking garage at night characters: Kate, Deep tone: paranoid",
    "a babysitter suspects the baby can talk characters: Molly tone: absurd",
    "a retired general writes his memoirs with a ghostwriter characters: General Shaw, Penny",
    "a couple argue about directions on a road trip characters: Nate, Leah tone: bickering",
    "a hostage negotiator talks to a bank robber on the phone characters: Sgt. Moss, Eddie tone: tense",
    "a prince swaps places with a stable boy characters: Prince Edmund, Hob",
    "two roommates discover they are dating the same person characters: Gina, Val tone: comic",
    "a lawyer cross-examines a lying witness in the courtroom characters: Ms. Fry, Mr. Doyle",
    "a grieving father talks to his son's empty room characters: Frank tone: sad",
    "a game show contestant realises the host is cheating characters: Beth, Chip tone: satirical",
    "a witch sells a cursed potion to a skeptical customer characters: Morgana, Ted",
    "two coworkers are locked in the office overnight characters: Pam, Raj tone: awkward",
    "a con artist sells a fake cure to a desperate mother characters: Doc Wheeler, Martha tone: dark",
    "an ambassador and a translator mistranslate on purpose characters: Ambassador Keel, Lia tone: comic",
    "a runaway teenager calls home from a pay phone characters: Casey, Mom",
    "a submarine crew detects an unknown signal characters: Captain Ross, Ensign Park tone: tense",
    "a tailor measures a man for his own funeral suit characters: Mr. Abel, Mr. Crane tone: dark comic",
    "two sisters run a failing bakery characters: Hannah, Dee",
    "a private eye is hired by the man she is investigating characters: Roz, Mr. Vance tone: noir",
    "a kid sells lemonade to a grumpy neighbour characters: Tim, Mr. Hobbs tone: sweet",
    "a pilot and co-pilot lose an engine over the ocean characters: Captain Ngata, First Officer Bray tone: urgent",
    "a poet and a banker fall for each other in a cafe characters: Jules, Henry tone: romantic",
    "an android bartender refuses to serve a drunk regular characters: Axel, Murph",
    "a mayor announces the town's river has turned to wine characters: Mayor Tuttle, Clerk Bea tone: absurd",
    "a painter argues with her subject about the portrait characters: Vera, Lord Ashby",
    "two firefighters wait out a blaze in a stairwell characters: Diaz, Kowalski tone: grim",
    "a student confesses to breaking the school's trophy case characters: Eli, Principal Ward",
    "a mafia boss teaches his nephew to make sauce characters: Don Vito, Sonny tone: comic",
    "a librarian catches someone sleeping in the library characters: Mrs. Penn, Drifter",
    "a cult leader's daughter tries to leave characters: Eden, Father Abel tone: chilling",
    "two detectives argue over the last donut at the precinct characters: Rizzo, Chen tone: comic",
    "a time traveler warns her younger self characters: Old May, Young May tone: urgent",
    "an estate agent shows a haunted house to a couple characters: Derek, Sue, Alan",
    "a sheriff and an outlaw share a jail cell characters: Sheriff Cobb, Kid Rio tone: wry",
    "two rival chefs are forced to cook together characters: Remy, Paula tone: heated",
    "a young doctor delivers bad news for the first time characters: Dr. Singh, Mrs. Lowe tone: gentle",
    "a dog walker finds a briefcase full of cash in the park characters: Benny tone: comic",
    "a band breaks up in the middle of a gig characters: Lou, Kat, Spike tone: chaotic",
    "a queen and her twin sister trade crowns characters: Queen Isolde, Brenna",
    "a man tries to return a haunted doll to the store characters: Phil, Clerk tone: deadpan",
    "two aging actors rehearse a love scene characters: Marjorie, Desmond tone: wistful",
    "a submarine cook plans a mutiny over the menu characters: Cookie, Lt. Hayes tone: comic",
    "an ex-con asks his parole officer for one favour characters: Dutch, Officer Lane",
    "a shy accountant finally stands up to his boss characters: Gerald, Ms. Thorne tone: triumphant",
    "a rainy bus stop conversation between strangers tone: quiet",
    "a chess club president accuses a member of cheating with an earpiece characters: Doris, Neil tone: petty",
]

# Written after the word lists were frozen; see the module docstring before changing either.
HELDOUT_PROMPTS = [
    "a lifeguard and a swimmer argue about who saved whom characters: Rhea, Tobias tone: comic",
    "a retired clockmaker repairs a watch for a woman who will not give her name characters: Anselm, Wren tone: mysterious",
    "two cousins split an inheritance of three hundred houseplants characters: Delia, Marcus tone: deadpan",
    "a beekeeper tells her neighbour that the hives are dying characters: Odile, Franklin tone: quiet",
    "a passenger confesses to the crew of a fogbound ferry characters: Ines, Bastian tone: eerie",
    "an interpreter at a peace summit notices a deliberate lie characters: Anouk, Delegate Ferris tone: tense",
    "an ice-cream seller refuses to play the jingle ever again characters: Norm, Daisy tone: comic",
    "a locksmith is called to open a door that should stay shut characters: Petra, Mr. Okafor",
    "an elderly twin insists she is the other twin characters: Bridget, Margot tone: absurd",
    "a dentist tries to calm a terrified rock star before a filling characters: Dr. Moll, Ziggy tone: comic",
    "a marathon runner collapses a mile from the finish and a stranger stays with her characters: Keisha, Arlo tone: tender",
    "two climbers disagree about turning back below the peak characters: Sven, Imogen tone: urgent",
    "a puppeteer argues with his own puppet while children watch characters: Barnaby tone: unsettling",
    "a census taker interviews a family that keeps changing its story characters: Mr. Pruitt, Ada Lusk, Tom Lusk tone: farce",
    "a widower learns to make a video call to reach his granddaughter characters: Horace, Juniper tone: warm",
    "a glassblower and her apprentice break a commission the day before delivery characters: Sabine, Theo",
    "an insurance assessor inspects a flooded bookshop with its owner characters: Grainger, Mrs. Adeyemi tone: melancholy",
    "two rival florists compete to decorate the mayor's inauguration characters: Pim, Lottie tone: petty",
    "a sleepwalker wakes up holding a stranger's keys and a hand-drawn map characters: Ronan, Mags",
    "a snowplough driver rescues a family stranded in a blizzard characters: Gunnar, Tessa tone: gritty",
    "a sommelier is accused of switching the wine characters: Lucien, Mrs. Harrow tone: sly",
    "a taxidermist asks a grieving owner what the dog was really like characters: Edwin, Lola tone: macabre",
    "a mechanic tells a proud owner the vintage motorbike is beyond saving characters: Rosa, Clive tone: bittersweet",
    "a referee is cornered by both managers after a disputed goal characters: Okoro, Benson, Varga tone: heated",
    "a sign language interpreter signs a speech she disagrees with characters: Hana, Minister Dale",
    "a tattooist talks a customer out of a face tattoo characters: Jax, Tilly tone: wry",
    "a hot air balloon loses height while a proposal is still unanswered characters: Amir, Colette tone: romantic",
    "a retired stuntman teaches his grandson how to fall characters: Buck, Leo tone: warm",
    "two security guards at an aquarium argue about a missing octopus characters: Pryce, Ondine tone: comic",
    "a foster mother meets the teenager's birth mother for the first time characters: Gwen, Shay tone: tender",
    "a pharmacist suspects a regular customer of forging prescriptions characters: Mr. Dunmore, Lacey",
    "a quiz team loses on a technicality and blames its newest member characters: Fern, Otis, Gail tone: petty",
    "an auctioneer realises the painting up for sale was stolen from her family characters: Harriet, Mr. Solano tone: noir",
    "a deep-sea diver radios up that she has found something moving characters: Marisol, Keane tone: quiet dread",
    "a ranger catches a teenager carving initials into an ancient tree characters: Ruthie, Dax tone: stern",
    "an air traffic controller talks a passenger through landing after the crew fell ill characters: Nadia, Corey tone: urgent",
    "a best man loses the rings an hour before the ceremony characters: Declan, Priyanka tone: frantic",
    "a tour guide invents history to impress a know-it-all tourist characters: Giles, Harmony tone: comic",
    "a fortune teller sees nothing at all in a client's future characters: Madame Zora, Pete tone: unsettling",
    "a long-haul driver picks up a hitchhiker who knows his name characters: Rusty, Wynn tone: eerie",
    "two estranged brothers scatter their mother's ashes and argue about where characters: Cal, Owen tone: bittersweet",
    "a debt collector falls for the woman he has been chasing characters: Vince, Marigold tone: romantic",
    "a zookeeper negotiates with a gorilla that has learned sign language characters: Ingrid, Bruno tone: absurd",
    "a synchronised swimming duo fall out mid-routine characters: Bella, Tamsin tone: comic",
    "an undertaker's assistant hears a knock from inside a coffin characters: Silas, Mr. Greer tone: gallows humour",
    "a teenager admits to her stepfather that she sold his record collection characters: Nell, Martin tone: awkward",
    "a city councillor tries to talk down an angry protest characters: Councillor Yates, Juno tone: sharp",
    "a lonely caller talks to an overnight radio DJ tone: quiet",
    "a stranger returns a lost wallet with a note tucked inside tone: mysterious",
    "a cryptographer realises her own messages are being read characters: Ilse, Gideon tone: paranoid",
]

assert len(TUNING_PROMPTS) == 100, len(TUNING_PROMPTS)
assert len(HELDOUT_PROMPTS) == 50, len(HELDOUT_PROMPTS)
assert not set(TUNING_PROMPTS) & set(HELDOUT_PROMPTS)

SPLITS = {"heldout": HELDOUT_PROMPTS, "tuning": TUNING_PROMPTS}
