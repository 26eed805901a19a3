# docs/sql-api.md cannot drift from the catalog: every function signature it shows exists with
# exactly those parameters (names, types, defaults), every user-facing function (not starting
# with _) is documented with each of its overloads, and every view's column table lists the
# view's columns in order with their types.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename qw(dirname);

my $doc_path = dirname(__FILE__) . '/../../docs/sql-api.md';
open(my $fh, '<', $doc_path) or die "cannot read $doc_path: $!";
my $doc = do { local $/; <$fh> };
close($fh);

my $node = PostgreSQL::Test::Cluster->new('docs');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pgtopic'\npgtopic.maintenance_worker = off\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgtopic');

sub normalise {
    my ($args) = @_;
    $args =~ s/\s+/ /g;
    $args =~ s/::[a-z][a-z ]*(\[\])?//g;    # NULL::text -> NULL
    $args =~ s/timestamp with time zone/timestamptz/g;
    $args =~ s/"//g;                             # "partition" -> partition
    $args =~ s/^ | $//g;
    $args =~ s/ ,/,/g;
    $args =~ s/\( /(/g;
    return $args;
}

# pgtopic.name(args) as the docs write them: in ```text blocks and in `…` spans.
my %documented;    # "name(args)" -> 1
# A declaration, not a call in an example: every argument is "name type ...".
sub is_declaration {
    my ($args) = @_;
    return 1 if $args =~ /^\s*$/;
    return 0 if $args =~ /['=>]/;
    for my $arg (split /,/, $args) {
        return 0 unless $arg =~ /^\s*"?[a-z_0-9]+"?\s+[a-z]/;
    }
    return 1;
}
my @spans = ($doc =~ /```(?:text|sql)\n(.*?)```/sg, $doc =~ /`(pgtopic\.[a-z_0-9]+\(.*?\)[^`]*)`/g);
for my $span (@spans) {
    while ($span =~ /pgtopic\.([a-z_0-9]+)\(((?:[^()]|\((?:[^()])*\))*)\)/sg) {
        my ($name, $args) = ($1, $2);
        next unless is_declaration($args);
        $documented{"$name(" . normalise($args) . ')'} = 1;
    }
}
cmp_ok(scalar(keys %documented), '>', 20, 'the docs show signatures (' . scalar(keys %documented) . ')');

my @catalog = split /\n/, $node->safe_psql('postgres', q{
    SELECT p.proname || '(' || pg_get_function_arguments(p.oid) || ')'
      FROM pg_proc p
     WHERE p.pronamespace = 'pgtopic'::regnamespace AND p.proname !~ '^_' AND p.prorettype <> 'trigger'::regtype
     ORDER BY 1});
my %in_catalog = map { my $s = $_; $s =~ /^([a-z_0-9]+)\((.*)\)$/s or die "unexpected catalog row $s"; ("$1(" . normalise($2) . ')' => 1) } @catalog;

for my $sig (sort keys %in_catalog) {
    ok($documented{$sig}, "documented: $sig");
}
for my $sig (sort keys %documented) {
    my ($name) = $sig =~ /^([a-z_0-9]+)\(/;
    next if $name =~ /^_/;
    ok($in_catalog{$sig}, "exists as documented: $sig");
}

# Views: the first table after "### pgtopic.<view>" lists | column | type | … |.
my @views = split /\n/, $node->safe_psql('postgres',
    q{SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'pgtopic'::regnamespace AND c.relkind = 'v'
         AND c.relname !~ '^_' ORDER BY 1});
for my $view (@views) {
    my ($section) = $doc =~ /^### pgtopic\.\Q$view\E\n(.*?)(?=^#{2,3} )/ms;
    ok(defined $section, "view $view has a section");
    next unless defined $section;
    my @doc_columns;
    for my $line (split /\n/, $section) {
        last if @doc_columns && $line !~ /^\|/;
        next unless $line =~ /^\|\s*([a-z_]+)\s*\|\s*([a-z][a-z0-9 \[\]]*?)\s*\|/;
        next if $1 eq 'Column' || $1 eq 'column';
        push @doc_columns, "$1 $2";
    }
    my $columns = $node->safe_psql('postgres', qq{
        SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, NULL), ', ' ORDER BY a.attnum)
          FROM pg_attribute a WHERE a.attrelid = 'pgtopic.$view'::regclass AND a.attnum > 0});
    $columns =~ s/timestamp with time zone/timestamptz/g;
    is(join(', ', @doc_columns), $columns, "view $view: the documented columns are the view's");
}

$node->stop;
done_testing();
